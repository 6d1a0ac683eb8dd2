"""Opening saved runs: zipped run directories, the runs of a folder, and the rows to explore.

A run travels as a zip of its directory (what the dashboard's Export page downloads, and what
:func:`zip_run` writes): the run's files with ``manifest.json`` at the zip's root or inside one
top-level folder, optionally with its cached explanation in ``analysis/``. :func:`open_zip`
reads such a zip defensively (no path outside the run, no absolute path, no link, a bounded
number of files and of uncompressed bytes, all checked before and while extracting) into a
temporary directory, loads it with :meth:`Run.load` (so a damaged, altered or newer-format run
is refused as it is from a directory) and deletes the directory. :func:`list_runs` lists the
runs of a folder from their manifests. :func:`check_rows` and :func:`explore_on` decide whether
a table can be explored with a run, and whether it is the table the run was trained on.

Every refusal is a :class:`RunError` (or ``TableError`` for rows) whose message is one sentence.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import stat
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import pandas as pd

from mrta.analysis.explanation import Explanation
from mrta.csvfile import write_csv
from mrta.data.read import reading_limits
from mrta.errors import ArchiveError, MrtaError, RunError, TableError, one_line
from mrta.pipelines.analysis_cache import RECORD, load_explanation, save_explanation
from mrta.pipelines.explain import DEFAULT_MAX_ROWS
from mrta.runs.bounds import MAX_HEADER_BYTES, max_json_bytes, max_run_bytes
from mrta.runs.control import CONTROL_WEIGHTS
from mrta.runs.manifest import (
    ANALYSIS_DIR,
    DATA_FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MEMBER_WEIGHTS,
    WEIGHTS,
)
from mrta.runs.run import Run
from mrta.task import Task

MAX_FILES = 200  # a run has at most ~10 files and its analysis 5: room for stray extras
MAX_BYTES = 2 << 30  # uncompressed; a run with a 200 MB upload's rows stays well under 2 GiB
RUNS_DIR_ENV = "MRTA_RUNS_DIR"  # the dashboard's runs folder (``mrta dashboard --runs-dir``)
DEFAULT_RUNS_DIR = "runs"  # used when it exists in the working directory and nothing is set
MAX_LISTED = 500  # runs listed from one folder, newest first
_JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db")  # what zipping tools add beside the files
_COPY_CHUNK = 1 << 20
# A member that unpacks to more than this many times its compressed size, past the first
# 16 MiB, is a decompression bomb: weights barely compress, tables and JSON ~3-20 times.
MAX_RATIO = 200
_RATIO_FROM = 16 << 20


@dataclass
class OpenedRun:
    """A run read from a zip or a folder, with what its manifest and cached analysis say."""

    run: Run
    name: str  # shown to the user: the zip's file name or the run folder's name
    where: str  # where it came from, in words
    created: str | None = None  # from the manifest, ISO 8601
    format_version: int | None = None
    data_digest: str | None = None  # SHA-256 of the saved rows' data.csv, when saved
    cached: Explanation | None = None  # the analysis saved in ``analysis/``, when readable
    cached_source: str | None = None  # the rows that analysis was computed on (a source key)
    notes: list[str] = field(default_factory=list)

    def cached_for(self, *sources: str | None) -> Explanation | None:
        """The cached analysis when it was computed on one of ``sources``, else ``None``."""
        if self.cached is None or self.cached_source is None:
            return None
        return self.cached if self.cached_source in sources else None

    def saved_rows_source(self, max_rows: int) -> str | None:
        """The source key of the rows saved with the run (see :func:`source_key`)."""
        if self.data_digest is None:
            return None
        return f"sha256:{self.data_digest}:max_rows={max_rows}"


@dataclass(frozen=True)
class RunEntry:
    """One run directory of a runs folder, as its manifest and schema describe it."""

    name: str
    path: Path
    created: str | None = None
    format_version: Any = None
    target: str | None = None
    task: str | None = None
    rows_saved: bool = False
    group_by: str | None = None  # set resolution: the group key; None for row resolution
    problem: str | None = None  # why it cannot be opened, when the manifest already says so

    @property
    def label(self) -> str:
        """``name · 2024-05-01 12:00 UTC · multiclass → species · rows saved``."""
        parts = [self.name]
        if self.created:
            parts.append(format_created(self.created))
        if self.target:
            parts.append(f"{self.task or '?'} → {self.target}")
        if self.group_by:
            parts.append(f"sets by {self.group_by}")
        if self.rows_saved:
            parts.append("rows saved")
        if self.problem:
            parts.append(f"cannot be opened: {self.problem}")
        return " · ".join(parts)


# -- source keys: which rows an analysis was computed on --------------------------------------
def source_key(data: bytes, max_rows: int) -> str:
    """The key of an analysis computed on the CSV file ``data``: the one ``mrta explain``
    caches its analysis under, so that the dashboard and the command line share the cache."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}:max_rows={max_rows}"


def frame_source(frame: pd.DataFrame, max_rows: int) -> str:
    """The key of an analysis computed on ``frame``: the key of the ``data.csv`` that
    ``Run.save(include_data=True)`` writes for it."""
    return source_key(write_csv(frame, escape=False, index=False).encode(), max_rows)


# -- zips --------------------------------------------------------------------------------------
def zip_run(
    run: Run,
    explanation: Explanation | None = None,
    *,
    include_data: bool = False,
    source: str | None = None,
    folder: str = "run",
) -> bytes:
    """The run directory as a zip: its files in the top-level folder ``folder``, with the
    explanation cached in ``analysis/`` under ``source`` (default: the key of the run's rows,
    see :func:`frame_source`). :func:`open_zip` reads it back."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="mrta-zip-") as temporary:
        path = run.save(Path(temporary) / folder, include_data=include_data)
        if isinstance(explanation, Explanation):  # a set run's analysis is not cached
            if source is None and run.frame is not None:
                source = frame_source(run.frame, DEFAULT_MAX_ROWS)
            save_explanation(explanation, path, source=source or "unknown rows")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(path.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(path.parent).as_posix())
    return buffer.getvalue()


def open_zip(
    source: bytes | str | os.PathLike[str] | IO[bytes],
    *,
    name: str | None = None,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
) -> OpenedRun:
    """Read a zipped run directory; raises :class:`RunError` (an :class:`ArchiveError` for
    the zip itself) with a one-sentence message for anything but a safe zip of an intact run."""
    if name is None:
        name = Path(source).name if isinstance(source, str | os.PathLike) else "The zip file"
    data = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError):
        raise ArchiveError(
            f"{name} is not a zip file (or is cut short): upload the .zip that the Export page's "
            "'Download the run (.zip)' makes, or a zip of a run directory."
        ) from None
    except OSError as error:
        raise ArchiveError(f"{name} cannot be read ({error}).") from None
    with archive, tempfile.TemporaryDirectory(prefix="mrta-open-") as temporary:
        try:
            root, members = _run_members(archive, name, max_files, max_bytes)
            target = Path(temporary) / "run"
            _extract(archive, members, root, target, name, max_bytes)
            return open_run_dir(target, name=name, where=f"the uploaded file {name}")
        except MrtaError:
            raise
        except Exception as error:  # whatever a crafted zip makes Python raise: one message
            # an OS error's own words, without the server's temporary path
            detail = error.strerror if isinstance(error, OSError) and error.strerror else error
            detail = one_line(detail).replace(temporary, "")
            raise ArchiveError(
                f"{name} cannot be opened as a run ({detail}): it is damaged or was not made "
                "by MRTA Explorer. Zip the run directory again, or download it from the Export "
                "page."
            ) from None


def open_run_dir(
    path: str | os.PathLike[str], *, name: str | None = None, where: str | None = None
) -> OpenedRun:
    """Load the run directory ``path`` and the analysis cached in it (when readable).

    Refusals are :meth:`Run.load`'s, with the directory shown as ``name``.
    """
    path = Path(path)
    name = name or path.name
    try:
        run = Run.load(path)
    except RunError as error:
        raise type(error)(_renamed(str(error), path, name)) from None
    except Exception as error:  # whatever a damaged run makes Python raise: one message
        detail = _renamed(one_line(error), path, name)
        raise RunError(
            f"{name} cannot be loaded as a run ({detail}): it is damaged or was not saved by "
            "MRTA Explorer. Train it again, or open another run."
        ) from None
    manifest = _read_json(path / MANIFEST) or {}
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    version = manifest.get("format_version")
    opened = OpenedRun(
        run=run,
        name=name,
        where=where or f"the runs folder: {path}",
        created=manifest.get("created") if isinstance(manifest.get("created"), str) else None,
        format_version=version if isinstance(version, int) else None,
        data_digest=listed.get("data.csv") if run.frame is not None else None,
    )
    if getattr(run, "sets", None) is None:  # only row runs cache an analysis for the dashboard
        _read_cached_analysis(opened, path)
    return opened


def _read_cached_analysis(opened: OpenedRun, path: Path) -> None:
    """The explanation saved in ``analysis/``: it is a cache, so any fault only drops it."""
    record = _read_json(path / ANALYSIS_DIR / RECORD)
    if not isinstance(record, dict) or not isinstance(record.get("source"), str):
        return
    try:
        cached, note = load_explanation(path, record["source"])
    except Exception:  # a cache from elsewhere: unreadable means recomputed, never a failure
        cached, note = None, None
    if cached is None:
        opened.notes.append(
            note or "The analysis saved with the run cannot be read: it is recorded again."
        )
        return
    opened.cached, opened.cached_source = cached, record["source"]


def _renamed(message: str, path: Path, name: str) -> str:
    """``message`` with the (temporary) directory ``path`` shown as ``name``."""
    return message.replace(repr(str(path)), repr(name)).replace(str(path), name)


def _run_members(
    archive: zipfile.ZipFile, name: str, max_files: int, max_bytes: int
) -> tuple[tuple[str, ...], list[tuple[zipfile.ZipInfo, tuple[str, ...]]]]:
    """The run's root (path parts) and its entries with their safe relative parts; refuses
    unsafe or oversized zips before anything is written."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise ArchiveError(
            f"{name} holds {len(infos):,} entries, more than the {max_files:,} a run can have: "
            "zip one run directory."
        )
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise ArchiveError(
            f"{name} unpacks to {declared:,} bytes, more than the limit of {max_bytes:,}: "
            "zip one run directory, without other files."
        )
    entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: set[tuple[str, ...]] = set()
    for info in infos:
        parts = _safe_parts(info, name)
        if info.is_dir() or not parts or parts[0] in _JUNK or parts[-1] in _JUNK:
            continue
        if parts in seen:
            raise ArchiveError(f"{name} holds {'/'.join(parts)} twice: zip the run again.")
        seen.add(parts)
        entries.append((info, parts))
    if not entries:
        raise ArchiveError(f"{name} is an empty zip: zip a run directory (its files, not a link).")
    if (MANIFEST,) in seen:
        root: tuple[str, ...] = ()
    else:
        roots = sorted({parts[0] for parts in seen if parts[1:] == (MANIFEST,)})
        if len(roots) > 1:
            listed = ", ".join(roots[:5])
            raise ArchiveError(
                f"{name} holds {len(roots)} runs ({listed}): zip one run directory at a time."
            )
        if not roots:
            raise ArchiveError(
                f"{name} holds no saved run: a zipped run has {MANIFEST} at its top or in one "
                "top-level folder, as the Export page's 'Download the run (.zip)' makes it."
            )
        root = (roots[0],)
    return root, [(info, parts) for info, parts in entries if parts[: len(root)] == root]


def _safe_parts(info: zipfile.ZipInfo, name: str) -> tuple[str, ...]:
    """The entry's path as parts; refuses links, absolute paths and paths that climb out."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{name} holds a link ({info.filename}): zip the run's files only.")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{name} is encrypted: zip the run without a password.")
    raw = info.filename.replace("\\", "/")  # some Windows tools write backslashes
    path = PurePosixPath(raw)
    if raw.startswith("/") or (path.parts and path.parts[0].endswith(":")) or ".." in path.parts:
        raise ArchiveError(
            f"{name} holds a path outside the run ({info.filename!r}): it was refused unread."
        )
    return tuple(part for part in path.parts if part not in ("", "."))


def _extract(
    archive: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    root: tuple[str, ...],
    target: Path,
    name: str,
    max_bytes: int,
) -> None:
    """Write the run's entries under ``target``, counting the bytes really unpacked (a zip's
    declared sizes can lie)."""
    total = 0
    base = target.resolve()
    for info, parts in members:
        limit = member_limit(parts[len(root) :], max_bytes)
        if info.file_size > limit:
            raise ArchiveError(_too_large(name, info.filename, limit))
        destination = target.joinpath(*parts[len(root) :])
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.resolve().is_relative_to(base):  # belt and braces
            raise ArchiveError(f"{name} holds a path outside the run ({info.filename!r}).")
        try:
            with archive.open(info) as source, destination.open("wb") as out:
                unpacked = 0
                while chunk := source.read(_COPY_CHUNK):
                    total += len(chunk)
                    unpacked += len(chunk)
                    if total > max_bytes:
                        raise ArchiveError(
                            f"{name} unpacks to more than the limit of {max_bytes:,} bytes: "
                            "zip one run directory, without other files."
                        )
                    if unpacked > limit:
                        raise ArchiveError(_too_large(name, info.filename, limit))
                    if unpacked > _RATIO_FROM and unpacked > MAX_RATIO * info.compress_size:
                        raise ArchiveError(
                            f"{name} holds {info.filename}, which unpacks to more than "
                            f"{MAX_RATIO} times its compressed size: it is a decompression "
                            "bomb, not a saved run, and was refused."
                        )
                    out.write(chunk)
        except ArchiveError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise ArchiveError(
                f"{name} is damaged ({info.filename}: {error}): download or zip the run again."
            ) from None
        except (NotImplementedError, RuntimeError) as error:  # other compression, encryption
            raise ArchiveError(
                f"{name} cannot be unpacked ({error}): zip the run with ordinary compression."
            ) from None


# -- a folder of runs --------------------------------------------------------------------------
def member_limit(parts: tuple[str, ...], max_bytes: int) -> int:
    """The most bytes the run file at ``parts`` (relative to the run) may unpack to: what
    :meth:`Run.load` would read of it, so that nothing larger is written to disk first."""
    if parts[-1].endswith(".json"):
        return max_json_bytes()
    if len(parts) != 1:  # the cached analysis's maps, and stray files
        return max_bytes
    if parts[0] in DATA_FILES:
        return reading_limits().max_bytes
    if parts[0] in (WEIGHTS, CONTROL_WEIGHTS, *MEMBER_WEIGHTS):
        return max_run_bytes() + MAX_HEADER_BYTES + 8
    return max_bytes


def _too_large(name: str, member: str, limit: int) -> str:
    return (
        f"{name} holds {member}, which unpacks to more than the {limit:,} bytes a run's file "
        "of that kind may hold: it was refused before it was read."
    )


def runs_folder(environ: Mapping[str, str] | None = None) -> tuple[Path | None, str]:
    """The runs folder the dashboard lists, and where that choice came from.

    ``MRTA_RUNS_DIR`` when set (``mrta dashboard --runs-dir DIR`` sets it), else ``runs`` in
    the working directory when it exists, else ``None``.
    """
    environ = os.environ if environ is None else environ
    configured = environ.get(RUNS_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser(), f"set by {RUNS_DIR_ENV}"
    default = Path.cwd() / DEFAULT_RUNS_DIR
    if default.is_dir():
        return default, "the runs folder of the working directory"
    return None, "not set"


def list_runs(folder: str | os.PathLike[str], *, limit: int = MAX_LISTED) -> list[RunEntry]:
    """The run directories in ``folder`` (and ``folder`` itself, when it is a run), newest
    first. A subfolder without ``manifest.json`` is not a run and is left out; one whose
    manifest already shows it cannot be opened is listed with the reason in ``problem``.
    Raises :class:`RunError` when ``folder`` is not a readable directory."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"The runs folder {str(folder)!r} does not exist or is not a folder.")
    try:
        children = sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError as error:
        raise RunError(f"The runs folder {str(folder)!r} cannot be read ({error}).") from None
    entries = [
        _entry(path)
        for path in [folder, *children]
        if not path.name.startswith(".") and (path / MANIFEST).is_file()
    ]
    entries.sort(key=lambda entry: (entry.problem is not None, _sort_time(entry), entry.name))
    return entries[:limit]


def _sort_time(entry: RunEntry) -> float:
    try:
        return -datetime.fromisoformat(entry.created or "").timestamp()
    except ValueError:
        return float("inf")


def _entry(path: Path) -> RunEntry:
    manifest = _read_json(path / MANIFEST)
    name = path.name or str(path)
    if not isinstance(manifest, dict):
        return RunEntry(name, path, problem=f"its {MANIFEST} is not readable JSON")
    version = manifest.get("format_version")
    created = manifest.get("created") if isinstance(manifest.get("created"), str) else None
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    schema = _read_json(path / "schema.json")
    schema = schema if isinstance(schema, dict) else {}
    config = _read_json(path / "config.json")
    sets = config.get("sets") if isinstance(config, dict) else None
    group_by = sets.get("group_by") if isinstance(sets, dict) else None
    problem = None
    if manifest.get("format") != FORMAT:
        problem = "it is not a saved MRTA run"
    elif not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problem = f"its format version {version!r} is unknown"
    elif version > FORMAT_VERSION:
        problem = (
            f"it was saved in run format {version}, newer than the format {FORMAT_VERSION} "
            "this version reads"
        )
    return RunEntry(
        name=name,
        path=path,
        created=created,
        format_version=version,
        target=schema.get("target") if isinstance(schema.get("target"), str) else None,
        task=schema.get("task") if isinstance(schema.get("task"), str) else None,
        rows_saved="data.csv" in files,
        group_by=group_by if isinstance(group_by, str) else None,
        problem=problem,
    )


def format_created(created: str | None) -> str:
    """``2024-05-01 12:00 UTC`` from the manifest's ISO time; the text itself if unparsable."""
    if not created:
        return "unknown date"
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return created
    zone = moment.tzname() or ""
    return f"{moment:%Y-%m-%d %H:%M} {'UTC' if zone in ('UTC', 'UTC+00:00') else zone}".strip()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON, or nested too deep
        return None


# -- rows to explore a run on ------------------------------------------------------------------
def check_rows(run: Run, frame: pd.DataFrame) -> int:
    """The number of rows of ``frame`` with a target; raises ``TableError`` (one sentence)
    when ``frame`` lacks a feature column or the target, holds target labels the model does
    not know, has no row with a target, or cannot be encoded as the run's preprocessor says."""
    run.schema.require_columns(frame)
    sets = getattr(run, "sets", None)
    for role, column in (("group key", sets and sets.group_by), ("order", sets and sets.order_by)):
        if column and column not in frame.columns:
            raise TableError(
                f"The table lacks the {role} column {column!r} that the run's sets were made "
                "by: upload a table with the same columns."
            )
    target = run.schema.encode_target(frame)
    has_target = target >= 0 if run.schema.task != Task.REGRESSION else ~np.isnan(target)
    count = int(has_target.sum())
    if count == 0:
        raise TableError(
            f"None of the {len(frame):,} rows has a value in the target column "
            f"{run.schema.target!r}: attention is recorded on rows with a target."
        )
    run.preprocessor.transform(frame.head(64), with_target=False)
    return count


def trained_on(run: Run, frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is the table ``run`` was trained on, as far as the run can tell: the
    split's rows are exactly the rows of ``frame`` with a target and, for classification, the
    test rows hold as many rows of each class as the saved confusion matrix counts."""
    splits = run.splits
    indices = [*splits.train, *splits.validation]
    if not splits.separate_test_file:
        indices += splits.test
    try:
        target = run.schema.encode_target(frame)
    except TableError:
        return False
    classification = run.schema.task != Task.REGRESSION
    has_target = target >= 0 if classification else ~np.isnan(target)
    sets = getattr(run, "sets", None)
    if sets is not None:  # a set run's split holds every row of each group with a target
        if sets.group_by not in frame.columns:
            return False
        keys = frame[sets.group_by].reset_index(drop=True)
        grouped = pd.Series(has_target).groupby(keys, dropna=True).transform("any")
        has_target = grouped.reindex(range(len(keys)), fill_value=False).to_numpy(dtype=bool)
    if sorted(indices) != np.flatnonzero(has_target).tolist():
        return False
    matrix = run.metrics.get("model", {}).get("confusion_matrix")
    if not classification or sets is not None or splits.separate_test_file:
        return True
    if not isinstance(matrix, dict):
        return True
    try:
        rows = zip(matrix["labels"], matrix["matrix"], strict=True)
        saved = {label: sum(row) for label, row in rows}
    except (KeyError, TypeError, ValueError):
        return True
    labels = np.asarray(run.class_labels, dtype=object)[target[list(splits.test)]]
    found = pd.Series(labels).value_counts().to_dict()
    return all(found.get(label, 0) == count for label, count in saved.items())


class RunOnOtherRows(Run):
    """A run explored on rows other than those it was trained on (its ``frame``): the split's
    indices do not point into them, so the split's rows are refused rather than guessed."""

    def rows(self, split: str) -> pd.DataFrame:
        raise RunError(
            "This run is explored on other rows than it was trained on, so its training, "
            "validation and test rows are unknown: open it with the table it was trained on "
            "(or the rows saved with it) for the test-split figures and the checks."
        )

    def save(self, path: str | os.PathLike[str], *, include_data: bool = False) -> Path:
        if include_data:
            raise RunError(
                "The rows this run is explored on are not the rows it was trained on: save the "
                "run without its rows."
            )
        return super().save(path)


def explore_on(run: Run, frame: pd.DataFrame) -> Run:
    """A copy of ``run`` whose ``frame`` is ``frame``, the rows the dashboard explores it on.

    When ``frame`` is not the table it was trained on (see :func:`trained_on`), the copy is a
    :class:`RunOnOtherRows`, which refuses the split's rows, and the separate test file (if
    any) is dropped with the training table.
    """
    explored = copy.copy(run)
    explored.frame = frame
    explored.uid = uuid.uuid4().hex  # other rows, other views: caches must not mix them
    if run.frame is frame or trained_on(run, frame):
        return explored
    explored.__class__ = RunOnOtherRows
    explored.test_frame = None
    return explored
