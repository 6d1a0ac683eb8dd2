"""Plain JSON from the project's values: the one cleaner every JSON file and message goes through,
and its inverse for the project's result dataclasses.

Dataclasses and mappings become objects, sequences and arrays lists, numpy scalars Python
numbers, enums their value, and NaN and infinities ``null``, so that what is written is
standard JSON that any reader accepts (``allow_nan=False``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON types (see the module docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_ready(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, enum.Enum):
        return json_ready(value.value)
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def from_json_ready(cls: type[T], data: Mapping[str, Any], **entries: type) -> T:
    """The dataclass `cls` back from :func:`json_ready`'s dict: each field in `entries` holds a
    list of dicts of that dataclass, made a tuple; a field missing from `data` takes its default
    (a result cached before the field existed)."""
    values = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        entry = entries.get(field.name)
        values[field.name] = value if entry is None else tuple(entry(**item) for item in value)
    return cls(**values)


def json_bytes(value: Any, indent: int = 1) -> bytes:
    """:func:`json_ready` ``value`` as indented UTF-8 JSON bytes."""
    return json.dumps(json_ready(value), indent=indent, allow_nan=False).encode()


def write_json(path: str | Path, value: Any) -> Path:
    """Write :func:`json_ready` ``value`` as indented UTF-8 JSON."""
    path = Path(path)
    text = json.dumps(json_ready(value), indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
