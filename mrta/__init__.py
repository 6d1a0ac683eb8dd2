"""MRTA Explorer: the MultiResolutionTabularAttention layer in PyTorch, with recorded attention.

The layer and its recorder are imported here; the rest lives in one module per idea:
``mrta.data.read``, ``mrta.data.stream``, ``mrta.data.schema``, ``mrta.data.preprocessing``, ``mrta.data.splits``
(tables), ``mrta.nn.model``, ``mrta.training.loop``, ``mrta.training.evaluate``, ``mrta.runs.run``,
``mrta.pipelines.streamed``, ``mrta.pipelines.distributed``, ``mrta.pipelines.archive`` (training and saved runs),
``mrta.analysis.atlas``, ``mrta.analysis.rollout``, ``mrta.analysis.heads``, ``mrta.analysis.checks``, ``mrta.pipelines.explain``
(attention analysis), ``mrta.data.sets``, ``mrta.nn.set_model``, ``mrta.analysis.sets`` (set
resolution: one example per group of rows), ``mrta.report.figures`` and ``mrta.report.exports`` (outputs),
``mrta.cli``.
"""

from mrta.analysis.recorder import AttentionRecorder
from mrta.config import ModelConfig, TrainConfig
from mrta.data.sets import SetOptions
from mrta.errors import RecordingLimitError, RunError
from mrta.nn.attention import AttentionBlock
from mrta.nn.interop import copy_keras_weights, layer_from_keras
from mrta.nn.layer import MAP_IDS, MAP_LABELS, MultiResolutionTabularAttention
from mrta.nn.model import TabularAttentionModel
from mrta.nn.set_model import SetAttentionModel
from mrta.pipelines.train_run import train_run
from mrta.runs.run import Run
from mrta.training.loop import Progress, TrainResult, fit

__all__ = [
    "MAP_IDS",
    "MAP_LABELS",
    "AttentionBlock",
    "AttentionRecorder",
    "ModelConfig",
    "MultiResolutionTabularAttention",
    "Progress",
    "RecordingLimitError",
    "Run",
    "RunError",
    "SetAttentionModel",
    "SetOptions",
    "TabularAttentionModel",
    "TrainConfig",
    "TrainResult",
    "copy_keras_weights",
    "fit",
    "layer_from_keras",
    "train_run",
]
