"""MRTA Explorer: the MultiResolutionTabularAttention layer in PyTorch, with recorded attention.

The layer and its recorder are imported here; the rest lives in one module per idea:
``mrta.reading``, ``mrta.streaming``, ``mrta.schema``, ``mrta.preprocessing``, ``mrta.splits``
(tables), ``mrta.model``, ``mrta.train``, ``mrta.evaluate``, ``mrta.runs``,
``mrta.streamed_runs``, ``mrta.distributed``, ``mrta.archive`` (training and saved runs),
``mrta.aggregate``, ``mrta.rollout``, ``mrta.heads``, ``mrta.analysis``, ``mrta.explain``
(attention analysis), ``mrta.set_data``, ``mrta.set_model``, ``mrta.set_attention`` (set
resolution: one example per group of rows), ``mrta.figures`` and ``mrta.export`` (outputs),
``mrta.cli``.
"""

from mrta.attention import AttentionBlock
from mrta.config import ModelConfig, TrainConfig
from mrta.interop import copy_keras_weights, layer_from_keras
from mrta.layer import MAP_IDS, MAP_LABELS, MultiResolutionTabularAttention
from mrta.model import TabularAttentionModel
from mrta.recorder import AttentionRecorder, RecordingLimitError
from mrta.runs import Run, RunError, train_run
from mrta.set_data import SetOptions
from mrta.set_model import SetAttentionModel
from mrta.train import Progress, TrainResult, fit

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
