"""Tables: reading files (whole or streamed), the schema, splits, preprocessing and sets of rows.

Independent of the model: what it hands on are DataFrames, encoded tensors and plain specs.
"""

from mrta.data.preprocessing import EncodedTable, PreprocessingOptions, Preprocessor
from mrta.data.read import ReadingOptions, read_table
from mrta.data.schema import Kind, Role, TableSchema, infer_schema
from mrta.data.sets import SetOptions
from mrta.data.splits import SplitOptions, Splits, make_splits

__all__ = [
    "EncodedTable",
    "Kind",
    "PreprocessingOptions",
    "Preprocessor",
    "ReadingOptions",
    "Role",
    "SetOptions",
    "SplitOptions",
    "Splits",
    "TableSchema",
    "infer_schema",
    "make_splits",
    "read_table",
]
