"""The model: the MRTA layer, its attention blocks and the row and set models built on it.

Imports torch and the project's level-0 modules only, never the data pipeline: a model is
built from a plain spec (:meth:`mrta.data.preprocessing.Preprocessor.model_spec` makes one for a
table).
"""

from mrta.nn.attention import AttentionBlock
from mrta.nn.interop import copy_keras_weights, layer_from_keras
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.nn.model import TabularAttentionModel, TaskModel, build_model
from mrta.nn.set_model import SetAttentionModel

__all__ = [
    "AttentionBlock",
    "MultiResolutionTabularAttention",
    "SetAttentionModel",
    "TabularAttentionModel",
    "TaskModel",
    "build_model",
    "copy_keras_weights",
    "layer_from_keras",
]
