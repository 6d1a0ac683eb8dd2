"""Bounds on what a saved run may declare, checked before anything of that size is built.

A run's files are trusted only as far as they can be checked: checksums stop damage, not forgery
(whoever crafts a run recomputes them). So before a tensor is allocated, :meth:`Run.load
<mrta.runs.run.Run.load>` checks:

- the JSON files: their total size and number of values against ``MRTA_MAX_JSON_BYTES``
  (:func:`max_json_bytes`), their nesting against :data:`MAX_JSON_DEPTH` (:func:`load_json`);
- every size the model spec declares (widths, layers, heads, token counts, vocabulary sizes,
  classes) against a fixed sanity bound (:func:`check_model_spec`), so that the model can be
  built on the ``meta`` device, which allocates nothing;
- the total bytes of the parameters that model (and the control) has against
  ``MRTA_MAX_RUN_BYTES`` (:func:`check_parameter_bytes`);
- each safetensors file's header (:class:`SafetensorsReader`, which reads the header alone):
  its 8-byte length against the file's size and :data:`MAX_HEADER_BYTES`, every tensor's dtype,
  shape and offsets (inside the data, contiguous, no overlap, no gap), then every name, dtype and
  shape against the meta-built model's.

Only then are the tensors read, once, into one buffer that the model's parameters view
(``load_state_dict(..., assign=True)``): no second copy. Both limits are read from the
environment at each load; a message that refuses a run names the variable to raise.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn

import numpy as np
import torch
from torch import Tensor, nn

from mrta.errors import RunError

RUN_BYTES_ENV = "MRTA_MAX_RUN_BYTES"
DEFAULT_RUN_BYTES = 2 << 30  # parameters of the model and its control together
JSON_BYTES_ENV = "MRTA_MAX_JSON_BYTES"
DEFAULT_JSON_BYTES = 64 << 20  # all of a run's JSON files together
#: JSON bytes per value allowed: a parsed value costs up to ~75 bytes of memory (an empty list
#: from the 3 bytes ``[],``), so values, not bytes, bound the memory that parsing takes.
BYTES_PER_JSON_VALUE = 16
MAX_JSON_DEPTH = 64  # a run's files nest at most ~6 levels
MAX_HEADER_BYTES = 16 << 20  # a safetensors header: ~100 bytes per tensor
MAX_MANIFEST_BYTES = 1 << 20  # the manifest lists about ten files

#: Sanity bounds on the sizes a model spec declares, far above any model this project trains;
#: they keep building the model on the ``meta`` device quick (a module per token's vocabulary).
MAX_WIDTH = 1 << 16  # d_token, d_model, num_heads
MAX_LAYERS = 64
MAX_TOKENS = 10_000  # columns: numerical and categorical tokens together
MAX_VOCABULARY = 100_000_000  # rows of one categorical column's embedding table
MAX_CLASSES = 100_000

#: The safetensors dtypes this version reads, as torch dtypes.
DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_TENSOR_KEYS = {"dtype", "shape", "data_offsets"}
_CHUNK = 8 << 20  # bytes read (and hashed) at a time
_SCAN = 1 << 20  # bytes of JSON scanned for brackets at a time


# -- limits ------------------------------------------------------------------------------------
def max_run_bytes() -> int:
    """The most parameter bytes a run (model and control) may have: ``MRTA_MAX_RUN_BYTES``."""
    return _limit(RUN_BYTES_ENV, DEFAULT_RUN_BYTES)


def max_json_bytes() -> int:
    """The most bytes a run's JSON files may hold together: ``MRTA_MAX_JSON_BYTES``; they may
    hold one value per :data:`BYTES_PER_JSON_VALUE` of it."""
    return _limit(JSON_BYTES_ENV, DEFAULT_JSON_BYTES)


def _limit(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise RunError(
            f"{variable} must be a positive whole number of bytes, got {text!r}: fix it or unset "
            f"it (the default is {default:,})."
        )
    return value


def size_text(count: int) -> str:
    """``count`` bytes in words: ``"512 bytes"``, ``"3.2 MiB"``, ``"2.0 GiB"``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,} bytes"


def raise_hint(variable: str, needed: int) -> str:
    """What to do about a refusal by `variable`'s limit: raise it, if the run is trusted."""
    return (
        f"if you trust the run and have the memory, set {variable} to at least {needed:,} "
        "(bytes) and load it again."
    )


# -- JSON ------------------------------------------------------------------------------------
def json_values(data: bytes) -> int:
    """An upper bound on the values in JSON text: one per comma and per opening bracket (and
    one more), counted without parsing."""
    return 1 + sum(data.count(mark) for mark in (b",", b"[", b"{"))


def json_depth(data: bytes) -> int:
    """How deep the brackets of UTF-8 JSON text nest outside its strings, counted in linear
    time without parsing (an upper bound where the text is not valid JSON)."""
    # Escapes pair up from the left: without them, every quote opens or closes a string.
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    codes = np.frombuffer(text, dtype=np.uint8)
    deepest = depth = quotes = 0
    for start in range(0, len(codes), _SCAN):
        chunk = codes[start : start + _SCAN]
        quote = chunk == ord('"')
        outside = (quotes + np.cumsum(quote, dtype=np.int64)) % 2 == 0
        opens = (chunk == ord("[")) | (chunk == ord("{"))
        closes = (chunk == ord("]")) | (chunk == ord("}"))
        steps = (opens.astype(np.int8) - closes.astype(np.int8)) * outside
        levels = depth + np.cumsum(steps, dtype=np.int64)
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
        quotes += int(quote.sum())
    return deepest


def load_json(data: bytes, what: str) -> Any:
    """Parse JSON text whose size is already bounded, refusing nesting deeper than
    :data:`MAX_JSON_DEPTH` (before the parser recurses) and keys given twice in one object.
    `what` names the file: ``"The file config.json of the run at '...'"``."""
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise RunError(
            f"{what} nests {depth:,} levels deep, more than the {MAX_JSON_DEPTH} a run's files "
            "may: it was damaged or crafted, so train the model again."
        )
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, a too long integer
        raise RunError(
            f"{what} is not valid JSON ({error}): it was damaged, so save or train the run again."
        ) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of parsed JSON; ``ValueError`` if a key appears twice (which would hide one)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return result


# -- the model spec ----------------------------------------------------------------------------
def check_model_spec(spec: Mapping[str, Any], where: str) -> None:
    """Every size the model spec (``config.json``'s ``model``) declares is a whole number within
    its sanity bound; refuses the run at `where` otherwise. Other faults are left to the model's
    own checks."""
    config = spec["config"]
    for name in ("d_token", "d_model", "num_heads", "plr_frequencies"):
        if name in config:
            _declared(config[name], name, MAX_WIDTH, where)
    if "num_layers" in config:
        _declared(config["num_layers"], "num_layers", MAX_LAYERS, where)
    tokens = len(spec["numerical_tokens"]) + len(spec["categorical_tokens"])
    _declared(tokens, "number of tokens (columns)", MAX_TOKENS, where)
    for index, size in enumerate(spec["vocabulary_sizes"]):
        _declared(size, f"vocabulary size (categorical token {index + 1})", MAX_VOCABULARY, where)
    if spec["n_classes"] is not None:
        _declared(spec["n_classes"], "number of classes", MAX_CLASSES, where)


def _declared(value: Any, name: str, limit: int, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        shown = f"{value:,}" if isinstance(value, int | float) else repr(value)
        raise RunError(
            f"The run at {where!r} declares a {name} of {shown} in config.json, where this "
            f"version takes a whole number from 1 to {limit:,}: the run was damaged or crafted, "
            "so train the model again."
        )


def check_parameter_bytes(models: Iterable[nn.Module], where: str) -> None:
    """Refuses the run at `where` when the parameters (and buffers) of `models`, built on the
    ``meta`` device (no memory), would take more bytes than :func:`max_run_bytes`."""
    total = sum(
        tensor.numel() * tensor.element_size()
        for model in models
        for tensor in model.state_dict().values()
    )
    limit = max_run_bytes()
    if total > limit:
        raise RunError(
            f"The run at {where!r} declares {size_text(total)} of weights (models and control), "
            f"more than the {size_text(limit)} this process loads ({RUN_BYTES_ENV}): "
            + raise_hint(RUN_BYTES_ENV, total)
        )


# -- safetensors ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors header; `begin` and `end` count from the data's start."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


class SafetensorsReader:
    """A safetensors file read in two steps through one open handle: the header alone (checked:
    its length, dtypes, shapes and offsets), then, once the caller has checked it against the
    model (:meth:`check_fits`), the tensors (:meth:`read_tensors`), every byte of the file
    hashed against the manifest's checksum.

    The format: 8 bytes of little-endian header length N, N bytes of a JSON object
    ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, then
    the tensors' bytes, offsets counting from the end of the header.

    Args:
        handle: the file, open for reading at its start (the reader does not close it).
        name: the file's name in the run, e.g. ``weights.safetensors``.
        where: the run's directory, as messages show it.
    """

    def __init__(self, handle: BinaryIO, name: str, where: str) -> None:
        self._handle = handle
        self._name = name
        self._where = where
        self._hash = hashlib.sha256()
        size = os.fstat(handle.fileno()).st_size
        if size < 8:
            self._refuse(f"it holds {size} bytes, fewer than the 8 of its header's length")
        length = int.from_bytes(self._read(8), "little")
        if length > size - 8:
            self._refuse(f"its header length {length:,} exceeds the file's {size:,} bytes")
        if length > MAX_HEADER_BYTES:
            self._refuse(
                f"its header of {size_text(length)} exceeds the {size_text(MAX_HEADER_BYTES)} a "
                "run's weights need"
            )
        header = self._read(length)
        if json_values(header) > MAX_HEADER_BYTES // BYTES_PER_JSON_VALUE:
            self._refuse("its header lists more values than a run's weights need")
        self.data_size = size - 8 - length
        what = f"The header of the file {name} of the run at {where!r}"
        self.tensors = self._entries(load_json(header, what))

    def _refuse(self, problem: str) -> NoReturn:
        raise RunError(
            f"The file {self._name} of the run at {self._where!r} is not a valid safetensors "
            f"file ({problem}): it was damaged or crafted, so train the model again."
        )

    def _read(self, count: int) -> bytes:
        data = self._handle.read(count)
        if len(data) != count:
            self._refuse("it ended before its header did")
        self._hash.update(data)
        return data

    def _entries(self, header: Any) -> dict[str, TensorEntry]:
        if not isinstance(header, dict):
            self._refuse("its header is not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(
            isinstance(value, str) for value in metadata.values()
        ):
            self._refuse("its __metadata__ is not an object of strings")
        entries = {name: self._entry(name, value) for name, value in header.items()}
        self._check_layout(entries)
        return entries

    def _entry(self, name: str, value: Any) -> TensorEntry:
        if not isinstance(value, dict) or set(value) != _TENSOR_KEYS:
            self._refuse(f"tensor {name!r} is not described by dtype, shape and data_offsets")
        dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
        if dtype not in DTYPES:
            self._refuse(f"tensor {name!r} has the dtype {dtype!r}, not one of {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not all(map(_whole, shape)):
            self._refuse(f"tensor {name!r} has the shape {shape!r}, not a list of sizes")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_whole, offsets)):
            self._refuse(f"tensor {name!r} has the data_offsets {offsets!r}, not [begin, end]")
        entry = TensorEntry(DTYPES[dtype], tuple(shape), *offsets)
        if entry.begin % entry.dtype.itemsize:
            self._refuse(f"tensor {name!r} begins at byte {entry.begin:,}, unaligned for {dtype}")
        expected = math.prod(entry.shape) * entry.dtype.itemsize
        if entry.end - entry.begin != expected:
            self._refuse(
                f"tensor {name!r} spans bytes {entry.begin:,} to {entry.end:,}, but its shape "
                f"{entry.shape} of {dtype} takes {expected:,} bytes"
            )
        return entry

    def _check_layout(self, entries: Mapping[str, TensorEntry]) -> None:
        """The tensors tile the data exactly: in order of offset, each begins where the one
        before ends, and the last ends at the end of the file."""
        position, before = 0, None
        for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
            if entry.begin < position:
                self._refuse(f"tensor {name!r} overlaps tensor {before!r}")
            if entry.begin > position:
                self._refuse(
                    f"the {entry.begin - position:,} bytes before tensor {name!r} are unused"
                )
            position, before = entry.end, name
        if position != self.data_size:
            self._refuse(
                f"its tensors end at byte {position:,} of its data, but the file holds "
                f"{self.data_size:,} bytes of data"
            )

    def check_fits(self, expected: Mapping[str, Tensor]) -> None:
        """The header's tensors are exactly `expected`'s (a meta-built model's state): the same
        names, dtypes and shapes."""
        missing = sorted(set(expected) - set(self.tensors))
        extra = sorted(set(self.tensors) - set(expected))
        if missing or extra:
            self._misfit(f"the model's {_few(missing)} missing, and {_few(extra)} not the model's")
        for name, tensor in expected.items():
            entry = self.tensors[name]
            if entry.shape != tuple(tensor.shape) or entry.dtype != tensor.dtype:
                self._misfit(
                    f"{name} is {entry.dtype} of shape {entry.shape}, where the model that "
                    f"config.json declares has {tensor.dtype} of shape {tuple(tensor.shape)}"
                )

    def _misfit(self, problem: str) -> NoReturn:
        raise RunError(
            f"The weights in {self._name} of the run at {self._where!r} do not fit its model "
            f"({problem}): the run was altered or damaged, so train the model again."
        )

    def read_tensors(self, digest: str) -> dict[str, Tensor]:
        """Every tensor, read into one buffer that they all view (no copy), once every byte of
        the file was hashed and matched `digest`, the manifest's SHA-256."""
        data = bytearray(self.data_size)
        view = memoryview(data)
        for start in range(0, len(data), _CHUNK):
            chunk = view[start : start + _CHUNK]
            if self._handle.readinto(chunk) != len(chunk):
                self._refuse("it ended before its data did")
            self._hash.update(chunk)
        if self._handle.read(1) or self._hash.hexdigest() != digest:
            raise RunError(
                f"The file {self._name} of the run at {self._where!r} does not match its "
                "checksum: it changed while it was read, so load the run again."
            )
        return {name: _tensor(data, entry) for name, entry in self.tensors.items()}


def _tensor(data: bytearray, entry: TensorEntry) -> Tensor:
    """The tensor `entry` describes: a view of `data`, no copy."""
    count = math.prod(entry.shape)
    if count == 0:  # frombuffer takes no empty tensor
        return torch.empty(entry.shape, dtype=entry.dtype)
    return torch.frombuffer(data, dtype=entry.dtype, count=count, offset=entry.begin).view(
        entry.shape
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _few(names: list[str]) -> str:
    """``"3 tensor(s): a, b, c, ..."``, at most three named."""
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"{len(names)} tensor(s)" + (f": {shown}" if names else "")
