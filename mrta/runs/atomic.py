"""Folders written all at once: a kill at any moment leaves the old folder or the new one,
complete, never a mixture.

The new folder is written as a hidden sibling (``.NAME.staging-PID-TOKEN``), every file flushed
to disk, and then swapped into place. POSIX renames a folder atomically, but not onto a non-empty
folder, so an existing folder is first renamed aside (``.NAME.replaced-PID-TOKEN``); the one
moment at which a kill leaves no folder under ``NAME`` is between the two renames, and
:func:`recover_folder` (run before every write and every read of such a folder) puts the old one
back. Siblings left by a process that is gone are removed; hidden names are never listed as runs.

    with staged_folder(run_dir) as folder:   # a fresh, empty, hidden sibling
        write_file(folder / "a.json", data)
    # here run_dir holds exactly what was written, or (after an error) what it held before
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING = "staging"  # a folder being written
REPLACED = "replaced"  # the folder it replaces, renamed aside for the moment of the swap
_SIBLING = re.compile(r"\.(?P<name>.+)\.(?P<kind>staging|replaced)-(?P<pid>\d+)-[0-9a-f]{8}")


@contextmanager
def staged_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A new, empty hidden sibling of ``target`` to write into; when the block ends without an
    error it replaces ``target`` (created or replaced whole), and otherwise it is removed and
    ``target`` is left as it was. ``target``'s parent folders are created if needed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    staging = _sibling(target, STAGING)
    staging.mkdir()
    try:
        yield staging
        _sync_tree(staging)
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` and flush it to disk."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def recover_folder(target: str | os.PathLike[str]) -> None:
    """Finish what a killed write of ``target`` left: when ``target`` is missing but a folder
    it replaced was renamed aside, that folder is put back; then the siblings of writers that
    are gone are removed. Writers still running are left alone. Does nothing (and raises
    nothing) where the parent folder cannot be read or written."""
    target = Path(target)
    try:
        siblings = [
            (path, match)
            for path in target.parent.iterdir()
            if (match := _SIBLING.fullmatch(path.name)) and match["name"] == target.name
        ]
        stale = [(p, m) for p, m in siblings if not _alive(int(m["pid"]))]
        if not os.path.lexists(target):
            aside = sorted(
                (p for p, m in stale if m["kind"] == REPLACED),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            if aside:
                os.rename(aside[0], target)
                stale = [(p, m) for p, m in stale if p != aside[0]]
        for path, _ in stale:
            shutil.rmtree(path, ignore_errors=True)
    except OSError:
        return


def is_staging_name(name: str) -> bool:
    """Whether ``name`` is a folder that :func:`staged_folder` writes or sets aside."""
    return _SIBLING.fullmatch(name) is not None


def _sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _swap(staging: Path, target: Path) -> None:
    aside = None
    if os.path.lexists(target):
        aside = _sibling(target, REPLACED)
        os.rename(target, aside)
    os.rename(staging, target)
    _sync_folder(target.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _sync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` (written by whatever means) and the folders to disk."""
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _sync_folder(Path(root))


def _sync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders (Windows): renames are still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _alive(pid: int) -> bool:
    """Whether the process ``pid`` (a writer) still runs; this process counts as running."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
