"""MRTA Explorer: the MultiResolutionTabularAttention layer in PyTorch, with recorded attention."""

from mrta.attention import AttentionBlock
from mrta.interop import copy_keras_weights, layer_from_keras
from mrta.layer import MAP_IDS, MAP_LABELS, MultiResolutionTabularAttention
from mrta.recorder import AttentionRecorder, RecordingLimitError

__all__ = [
    "MAP_IDS",
    "MAP_LABELS",
    "AttentionBlock",
    "AttentionRecorder",
    "MultiResolutionTabularAttention",
    "RecordingLimitError",
    "copy_keras_weights",
    "layer_from_keras",
]
