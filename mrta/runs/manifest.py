"""A run directory's files on disk: which there are, and reading them back checked.

The manifest (``manifest.json``) names the format, its version and each file's SHA-256;
:func:`verified_files` refuses a directory that is not a run, a newer format, a missing or
unlisted file and a file that does not match its checksum, each with a :class:`RunError`.
Checksums stop damage, not forgery: the sizes the files declare are bounded before anything of
that size is built (:mod:`mrta.runs.bounds`).

No link is followed: the run directory and each of its files are checked with ``lstat`` (a
directory, regular files) and opened without following a link (:func:`open_regular`), and the
weights are read from those checked bytes, not by safetensors' own loader (which follows links).

Format 2 added ``table.json`` (the table's fingerprint) and ``control.json`` (the control model,
or why there is none), both required from format 2 on, and ``control.safetensors`` (the
control's weights, when there is a control). A format 1 run, which has neither, still loads.
Format 3 is a run of several seed members: ``members.json`` (each member's seed and metrics, and
the training of members 1 on) and ``member-K.safetensors`` (member K's weights, K from 1; member
0's are ``weights.safetensors``). A run of one member is still saved in format 2.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, BinaryIO

from mrta.data.read import reading_limits
from mrta.errors import RunError
from mrta.runs.bounds import (
    BYTES_PER_JSON_VALUE,
    JSON_BYTES_ENV,
    MAX_HEADER_BYTES,
    MAX_MANIFEST_BYTES,
    RUN_BYTES_ENV,
    json_values,
    load_json,
    max_json_bytes,
    max_run_bytes,
    raise_hint,
    size_text,
)

FORMAT = "mrta-run"


#: 2: table.json and the control model (control.json, control.safetensors); 3: seed members
#: (members.json and their weights).
FORMAT_VERSION = 3
#: A run of one model is saved in format 2: versions before seed members read it too.
ONE_MODEL_FORMAT_VERSION = 2


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


MEMBERS_FILE = "members.json"  # the seed members' seeds, metrics and training (format 3)


MAX_SEEDS = 10  # seed members a run may hold


def member_weights(member: int) -> str:
    """The weights file of seed member `member` (1 on; member 0's are :data:`WEIGHTS`)."""
    return f"member-{member}.safetensors"


MEMBER_WEIGHTS = tuple(member_weights(k) for k in range(1, MAX_SEEDS))


#: Files a run of each format must list, besides the weights and `JSON_FILES`.
REQUIRED_FROM = {TABLE_FILE: 2, CONTROL_FILE: 2, MEMBERS_FILE: 3}


OPTIONAL_FILES = (CONTROL_WEIGHTS, *MEMBER_WEIGHTS)  # with a control, with seed members


ANALYSIS_DIR = "analysis"  # where a run caches its explanation (mrta.pipelines.analysis_cache)
#: Every name a run directory may hold.
RUN_NAMES = frozenset(
    (MANIFEST, WEIGHTS, *JSON_FILES, *REQUIRED_FROM, *OPTIONAL_FILES, *DATA_FILES, ANALYSIS_DIR)
)

LARGE_FILES = (WEIGHTS, CONTROL_WEIGHTS, *MEMBER_WEIGHTS, *DATA_FILES)  # read when needed

_CHUNK = 8 << 20  # bytes hashed at a time
# Opening a path that has become a link since it was checked fails; one that has become a pipe
# does not block.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class RunFiles:
    """A run directory whose manifest was read and whose listed files all match their
    checksums: the JSON files' contents, and the checksums to read the large files against."""

    path: Path
    digests: dict[str, str]  # every listed file's SHA-256, as the manifest gives it
    json: dict[str, bytes]  # every listed JSON file's contents, as checked

    def __contains__(self, name: str) -> bool:
        return name in self.digests

    def read(self, name: str) -> bytes:
        """A listed file, read whole and checked again (for the saved rows)."""
        with open_regular(self.path, name) as handle:
            data = handle.read()
        if file_digest(data) != self.digests[name]:
            raise RunError(
                f"The file {name} of the run at {str(self.path)!r} does not match its checksum: "
                "it changed while it was read, so load the run again."
            )
        return data


def verified_files(path: Path) -> RunFiles:
    """The run directory `path` (a real directory, not a link) with its manifest and every file
    it lists checked: each a regular file (not a link), within the bounds of
    :mod:`mrta.runs.bounds`, matching its SHA-256. Only the JSON files are kept in memory."""
    where = str(path)
    check_run_dir(path)
    manifest = _read_manifest(path)
    found = manifest.get("format_version")
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise RunError(f"The run at {where!r} has an unknown format version {found!r}.")
    if found > FORMAT_VERSION:
        raise RunError(
            f"The run at {where!r} was saved in run format {found}, newer than the format "
            f"{FORMAT_VERSION} this version reads: upgrade mrta-explorer to load it."
        )
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not all(isinstance(d, str) for d in listed.values()):
        raise RunError(f"The manifest of the run at {where!r} lists no files: save the run again.")
    required = [name for name, since in REQUIRED_FROM.items() if found >= since]
    for name in (WEIGHTS, *JSON_FILES, *required):
        if name not in listed:
            raise RunError(
                f"The manifest of the run at {where!r} does not list {name}: save the run again."
            )
    for name in listed:
        if name not in (*JSON_FILES, *REQUIRED_FROM, *LARGE_FILES):
            raise RunError(f"The manifest of the run at {where!r} lists an unknown file {name!r}.")
    _check_sizes(path, listed)
    contents = {}
    for name, digest in listed.items():
        with open_regular(path, name) as handle:
            data = handle.read() if name not in LARGE_FILES else None
            actual = _sha256(handle) if data is None else file_digest(data)
        if actual != digest:
            raise RunError(
                f"The file {name} of the run at {where!r} does not match its checksum: it was "
                "changed or damaged after saving, so train the model again."
            )
        if data is not None:
            contents[name] = data
    _check_json_values(path, contents)
    return RunFiles(path, dict(listed), contents)


def check_run_dir(path: Path) -> None:
    """Refuse `path` unless it is a directory itself, not a link to one."""
    where = str(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise RunError(f"There is no run directory at {where!r}: check the path.") from None
    if stat.S_ISLNK(mode):
        raise RunError(
            f"The run directory {where!r} is a link: runs are read from a real directory only, "
            "so give the path of the directory it points to, or copy the run there."
        )
    if not stat.S_ISDIR(mode):
        raise RunError(f"There is no run directory at {where!r}: check the path.")


def open_regular(path: Path, name: str) -> BinaryIO:
    """The file `name` of the run directory `path`, open for reading, after ``lstat`` found it a
    regular file (not a link, a pipe or a device) and the opened file is that same file."""
    where = str(path)
    try:
        found = os.lstat(path / name)
    except FileNotFoundError:
        raise RunError(
            f"The run at {where!r} lacks its file {name}: copy the whole run directory."
        ) from None
    if stat.S_ISLNK(found.st_mode):
        raise RunError(
            f"The file {name} of the run at {where!r} is a link: runs are read from regular "
            "files only, so copy the file itself into the run directory."
        )
    if not stat.S_ISREG(found.st_mode):
        raise RunError(
            f"The file {name} of the run at {where!r} is not a regular file: replace it with "
            "the file the run saved."
        )
    handle = open(os.open(path / name, _OPEN_FLAGS), "rb")  # noqa: SIM115 (the caller closes it)
    opened = os.fstat(handle.fileno())
    if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):
        handle.close()
        raise RunError(
            f"The file {name} of the run at {where!r} was replaced while it was read: load the "
            "run again."
        )
    return handle


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, read with a bound on its size; refuses a directory that is not a run."""
    where = str(path)
    if not os.path.lexists(path / MANIFEST):
        raise RunError(
            f"The directory {where!r} is not a saved run (it has no {MANIFEST}): check the path."
        )
    with open_regular(path, MANIFEST) as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise RunError(
            f"The file {MANIFEST} of the run at {where!r} is larger than the "
            f"{size_text(MAX_MANIFEST_BYTES)} a manifest needs: it was damaged or crafted."
        )
    manifest = parse_json(data, MANIFEST, where)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunError(f"The directory {where!r} is not a saved MRTA run: check the path.")
    return manifest


def _check_sizes(path: Path, listed: Mapping[str, str]) -> None:
    """Before anything is read: the JSON files within :func:`max_json_bytes` together, each
    weights file within :func:`max_run_bytes` (and a header), and the saved rows within what
    :func:`mrta.data.read.read_table` reads."""
    where = str(path)
    sizes = {name: _size(path, name) for name in listed}
    json_bytes, json_limit = sum(sizes[n] for n in listed if n not in LARGE_FILES), max_json_bytes()
    if json_bytes > json_limit:
        raise RunError(
            f"The JSON files of the run at {where!r} hold {size_text(json_bytes)}, more than the "
            f"{size_text(json_limit)} this process reads ({JSON_BYTES_ENV}): "
            + raise_hint(JSON_BYTES_ENV, json_bytes)
        )
    for name in (WEIGHTS, CONTROL_WEIGHTS, *MEMBER_WEIGHTS):
        size, limit = sizes.get(name, 0), max_run_bytes() + 8 + MAX_HEADER_BYTES
        if size > limit:
            raise RunError(
                f"The file {name} of the run at {where!r} holds {size_text(size)}, more than the "
                f"{size_text(limit)} this process loads ({RUN_BYTES_ENV}): "
                + raise_hint(RUN_BYTES_ENV, size)
            )
    for name in DATA_FILES:
        size, limit = sizes.get(name, 0), reading_limits().max_bytes
        if size > limit:
            raise RunError(
                f"The file {name} of the run at {where!r} holds {size_text(size)}, more than the "
                f"{size_text(limit)} a table may: save the run again without its rows."
            )


def _check_json_values(path: Path, contents: Mapping[str, bytes]) -> None:
    """The JSON files hold at most one value per :data:`BYTES_PER_JSON_VALUE` of
    :func:`max_json_bytes` together: what parsing them costs is bounded."""
    values = sum(json_values(data) for data in contents.values())
    limit = max_json_bytes() // BYTES_PER_JSON_VALUE
    if values > limit:
        raise RunError(
            f"The JSON files of the run at {str(path)!r} hold up to {values:,} values, more "
            f"than the {limit:,} this process reads ({JSON_BYTES_ENV} / {BYTES_PER_JSON_VALUE}): "
            + raise_hint(JSON_BYTES_ENV, values * BYTES_PER_JSON_VALUE)
        )


def _size(path: Path, name: str) -> int:
    """The size ``lstat`` gives for a listed file (0 when missing: reading it says so)."""
    try:
        return os.lstat(path / name).st_size
    except FileNotFoundError:
        return 0


def file_digest(data: bytes) -> str:
    """The checksum the manifest lists for a file of contents `data`: its SHA-256, in hex."""
    return hashlib.sha256(data).hexdigest()


def _sha256(handle: BinaryIO) -> str:
    """:func:`file_digest` of an open file's contents, read a chunk at a time."""
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def parse_json(data: bytes, name: str, where: str) -> Any:
    """The JSON file `name` of the run at `where`, parsed with a depth limit
    (:func:`mrta.runs.bounds.load_json`)."""
    return load_json(data, f"The file {name} of the run at {where!r}")


def package_version() -> str | None:
    try:
        return version("mrta-explorer")
    except PackageNotFoundError:
        return None
