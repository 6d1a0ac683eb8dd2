"""A run directory's files on disk: which there are, and reading them back checked.

The manifest (``manifest.json``) names the format, its version and each file's SHA-256;
:func:`verified_files` refuses a directory that is not a run, a newer format, a missing or
unlisted file and a file that does not match its checksum, each with a :class:`RunError`.
Checksums stop damage, not forgery.

Format 2 added ``table.json`` (the table's fingerprint) and ``control.json`` (the control model,
or why there is none), both required from format 2 on, and ``control.safetensors`` (the
control's weights, when there is a control). A format 1 run, which has neither, still loads.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mrta.errors import RunError

FORMAT = "mrta-run"


FORMAT_VERSION = 2  # 2: table.json and the control model (control.json, control.safetensors)


MANIFEST = "manifest.json"


WEIGHTS = "weights.safetensors"


JSON_FILES = (
    "config.json",
    "schema.json",
    "preprocessor.json",
    "splits.json",
    "metrics.json",
    "history.json",
)


DATA_FILES = ("data.csv", "test.csv")  # only when the rows are saved with the run


TABLE_FILE = "table.json"  # the table's fingerprint (format 2 on)


CONTROL_FILE = "control.json"  # the control model's facts, or why there is none (format 2 on)


CONTROL_WEIGHTS = "control.safetensors"  # the control's weights, when there is a control


#: Files a run of each format must list, besides the weights and `JSON_FILES`.
REQUIRED_FROM = {TABLE_FILE: 2, CONTROL_FILE: 2}


OPTIONAL_FILES = (CONTROL_WEIGHTS,)  # listed only when there is a control


def verified_files(path: Path) -> dict[str, bytes]:
    """Every file the manifest lists, read and checked against its SHA-256."""
    where = str(path)
    if not (path / MANIFEST).is_file():
        raise RunError(
            f"The directory {where!r} is not a saved run (it has no {MANIFEST}): check the path."
        )
    manifest = parse_json({MANIFEST: read_file(path, MANIFEST)}, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunError(f"The directory {where!r} is not a saved MRTA run: check the path.")
    found = manifest.get("format_version")
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise RunError(f"The run at {where!r} has an unknown format version {found!r}.")
    if found > FORMAT_VERSION:
        raise RunError(
            f"The run at {where!r} was saved in run format {found}, newer than the format "
            f"{FORMAT_VERSION} this version reads: upgrade mrta-explorer to load it."
        )
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise RunError(f"The manifest of the run at {where!r} lists no files: save the run again.")
    required = [name for name, since in REQUIRED_FROM.items() if found >= since]
    for name in (WEIGHTS, *JSON_FILES, *required):
        if name not in listed:
            raise RunError(
                f"The manifest of the run at {where!r} does not list {name}: save the run again."
            )
    files = {}
    for name, digest in listed.items():
        if name not in (WEIGHTS, *JSON_FILES, *REQUIRED_FROM, *OPTIONAL_FILES, *DATA_FILES):
            raise RunError(f"The manifest of the run at {where!r} lists an unknown file {name!r}.")
        data = read_file(path, name)
        if hashlib.sha256(data).hexdigest() != digest:
            raise RunError(
                f"The file {name} of the run at {where!r} does not match its checksum: it was "
                "changed or damaged after saving, so train the model again."
            )
        files[name] = data
    return files


def read_file(path: Path, name: str) -> bytes:
    try:
        return (path / name).read_bytes()
    except FileNotFoundError:
        raise RunError(
            f"The run at {str(path)!r} lacks its file {name}: copy the whole run directory."
        ) from None
    except OSError as error:
        raise RunError(
            f"The file {name} of the run at {str(path)!r} cannot be read ({error})."
        ) from error


def parse_json(files: Mapping[str, bytes], name: str) -> Any:
    try:
        return json.load(io.BytesIO(files[name]))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"The file {name} of a saved run is not valid JSON ({error}).") from None


def package_version() -> str | None:
    try:
        return version("mrta-explorer")
    except PackageNotFoundError:
        return None
