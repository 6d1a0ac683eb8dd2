"""MRTA Explorer: the MultiResolutionTabularAttention layer in PyTorch, with recorded attention.

``import mrta`` loads the layer and the models (torch only); the recorder, the training and the
run names load when first used. The packages, lowest level first (a module imports only from its
own level or below): ``mrta.errors``, ``mrta.config``, ``mrta.task``, ``mrta.streams``,
``mrta.jsonable``, ``mrta.csvfile``; ``mrta.nn`` and ``mrta.data``; ``mrta.training``;
``mrta.runs``; ``mrta.analysis``; ``mrta.report``; ``mrta.pipelines``; ``mrta.cli``.
"""

from typing import Any

from mrta.config import ModelConfig, TrainConfig
from mrta.errors import MrtaError, RecordingLimitError, RunError
from mrta.nn.attention import AttentionBlock
from mrta.nn.interop import copy_keras_weights, layer_from_keras
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.nn.model import TabularAttentionModel
from mrta.nn.set_model import SetAttentionModel
from mrta.streams import MAP_IDS, MAP_LABELS

__all__ = [
    "MAP_IDS",
    "MAP_LABELS",
    "AttentionBlock",
    "AttentionRecorder",
    "ModelConfig",
    "MrtaError",
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


def __getattr__(name: str) -> Any:
    """The names that need more than torch, imported on first use."""
    if name == "AttentionRecorder":
        from mrta.analysis.recorder import AttentionRecorder

        return AttentionRecorder
    if name == "SetOptions":
        from mrta.data.sets import SetOptions

        return SetOptions
    if name in ("Progress", "TrainResult", "fit"):
        from mrta.training import loop

        return getattr(loop, name)
    if name == "Run":
        from mrta.runs.run import Run

        return Run
    if name == "train_run":
        from mrta.pipelines.train_run import train_run

        return train_run
    raise AttributeError(f"module 'mrta' has no attribute {name!r}")
