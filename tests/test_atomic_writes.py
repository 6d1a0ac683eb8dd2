"""A kill at any moment of a save or of a cache write loses nothing: the folder is the old one
or the new one, complete, once :func:`recover_folder` has run (every load runs it).

A kill is simulated in-process at every step of a write (each file written, half of a file,
each rename, the removal of the old folder): the step raises, and nothing that runs after a
real kill (the clean-up of the unfinished folder) runs. One test kills a real child process
with SIGKILL at each step, to show that the simulation is faithful.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mrta.errors import RunError
from mrta.pipelines.analysis_cache import load_explanation, save_explanation
from mrta.pipelines.archive import list_runs
from mrta.pipelines.explain import explain
from mrta.runs import atomic
from mrta.runs.atomic import is_staging_name, recover_folder, staged_folder, write_file
from mrta.runs.manifest import ANALYSIS_DIR, file_digest
from mrta.runs.run import Run, check_save_target

FIXTURE = Path(__file__).parent / "fixtures" / "run_v1_row"


class Killed(BaseException):
    """Where a kill would have stopped the process."""


class KillAt:
    """Raise :class:`Killed` at step ``at`` of a write: before each file is written, in the
    middle of each file, before each rename and before the old folder is removed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int) -> None:
        self.at, self.steps = at, 0
        rename, rmtree = os.rename, shutil.rmtree

        def step() -> None:
            self.steps += 1
            if self.steps == self.at:
                raise Killed

        def killable_write(path: Path, data: bytes) -> None:
            step()
            with open(path, "xb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                step()
                handle.write(data[len(data) // 2 :])

        def killable_rename(source, destination) -> None:
            step()
            rename(source, destination)

        def killable_rmtree(path, ignore_errors: bool = False) -> None:
            if ".staging-" in os.fspath(path):
                return  # the clean-up after an error: a killed process never runs it
            step()
            rmtree(path, ignore_errors=ignore_errors)

        monkeypatch.setattr(atomic, "write_file", killable_write)
        monkeypatch.setattr("mrta.runs.run.write_file", killable_write)
        monkeypatch.setattr("mrta.pipelines.analysis_cache.write_file", killable_write)
        monkeypatch.setattr(atomic.os, "rename", killable_rename)
        monkeypatch.setattr(atomic.shutil, "rmtree", killable_rmtree)


def folder_state(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.rglob("*") if is_staging_name(p.name)]


def every_kill(monkeypatch: pytest.MonkeyPatch, write, recover) -> list[int]:
    """Run ``write`` once per step, killed at that step, calling ``recover`` after each kill;
    returns the number of steps of a whole write."""
    at = 1
    while True:
        with monkeypatch.context() as patch:
            KillAt(patch, at)
            try:
                write()
            except Killed:
                pass
            else:
                return at - 1
        with monkeypatch.context() as patch:
            # the killed writer was this very process: its leftovers are a dead writer's
            patch.setattr(atomic, "_alive", lambda pid: False)
            recover(at)
        at += 1


def test_a_folder_is_swapped_whole_or_not_at_all_at_every_kill(tmp_path, monkeypatch):
    target = tmp_path / "folder"
    old = {"a.json": b"old a", "b.bin": b"old b" * 100}
    new = {"a.json": b"new a", "b.bin": b"new b" * 50, "c.txt": b"new c"}
    outcomes = []

    def write() -> None:
        with staged_folder(target) as folder:
            for name, data in new.items():
                atomic.write_file(folder / name, data)

    def reset(_: int = 0) -> None:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for name, data in old.items():
            (target / name).write_bytes(data)

    def check(at: int) -> None:
        recover_folder(target)
        state = folder_state(target)
        assert state in (old, new), f"killed at step {at}: {sorted(state)}"
        assert leftovers(tmp_path) == [], f"killed at step {at}"
        outcomes.append("old" if state == old else "new")
        reset()

    reset()
    steps = every_kill(monkeypatch, write, check)
    assert steps == 2 * len(new) + 3  # two halves per file, two renames, the removal
    assert folder_state(target) == new
    assert outcomes[0] == "old" and outcomes[-1] == "new"  # killed while removing the old


def test_a_new_folder_is_either_absent_or_complete_at_every_kill(tmp_path, monkeypatch):
    target = tmp_path / "new" / "folder"  # parents are created

    def write() -> None:
        with staged_folder(target) as folder:
            atomic.write_file(folder / "x", b"xx")

    def check(at: int) -> None:
        recover_folder(target)
        assert not target.exists() or folder_state(target) == {"x": b"xx"}, at
        assert leftovers(tmp_path) == []
        shutil.rmtree(target, ignore_errors=True)

    assert every_kill(monkeypatch, write, check) == 3  # two halves and one rename


def test_an_error_while_writing_leaves_the_old_folder_and_no_staging(tmp_path):
    target = tmp_path / "folder"
    target.mkdir()
    (target / "kept").write_text("old")
    with pytest.raises(ValueError), staged_folder(target) as folder:
        write_file(folder / "half", b"new")
        raise ValueError("a failure half way")
    assert folder_state(target) == {"kept": b"old"}
    assert leftovers(tmp_path) == []


def test_a_running_writers_folder_is_left_alone_and_stale_ones_are_removed(tmp_path):
    target = tmp_path / "folder"
    target.mkdir()
    mine = tmp_path / f".folder.staging-{os.getpid()}-0123abcd"
    mine.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    stale = tmp_path / f".folder.staging-{dead.stdout.strip()}-89abcdef"
    stale.mkdir()
    recover_folder(target)
    assert mine.is_dir() and not stale.exists()


SWAP_CHILD = """
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("atomic", {module!r})
atomic = importlib.util.module_from_spec(spec); spec.loader.exec_module(atomic)
at, steps = int(sys.argv[1]), [0]
def step():
    steps[0] += 1
    if steps[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)
rename, rmtree = os.rename, atomic.shutil.rmtree
def killable_rename(a, b):
    step(); rename(a, b)
def killable_rmtree(path, ignore_errors=False):
    step(); rmtree(path, ignore_errors=ignore_errors)
atomic.os.rename, atomic.shutil.rmtree = killable_rename, killable_rmtree
with atomic.staged_folder({target!r}) as folder:
    for name in ("a", "b"):
        step()
        with open(folder / name, "wb") as handle:
            handle.write(b"new " + name.encode())
"""


def test_a_real_kill_at_every_step_leaves_the_old_folder_or_the_new(tmp_path):
    target = tmp_path / "folder"
    old, new = {"a": b"old a"}, {"a": b"new a", "b": b"new b"}
    script = tmp_path / "child.py"
    module = str(Path(atomic.__file__))
    script.write_text(textwrap.dedent(SWAP_CHILD.format(module=module, target=str(target))))
    seen = set()
    for at in range(1, 10):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        (target / "a").write_bytes(old["a"])
        child = subprocess.run([sys.executable, str(script), str(at)], capture_output=True)
        recover_folder(target)
        state = folder_state(target)
        assert state in (old, new), (at, child.stderr)
        assert leftovers(tmp_path) == []
        seen.add("old" if state == old else "new")
        if child.returncode == 0:
            break
        assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.returncode == 0 and seen == {"old", "new"}


# -- a run's save ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_run() -> Run:
    return Run.load(FIXTURE)


def test_a_run_killed_while_it_is_replaced_loads_as_the_old_run_or_the_new(
    fixture_run, tmp_path, monkeypatch
):
    target = tmp_path / "run"
    fixture_run.save(target, include_data=True)
    old_metrics = json.loads((target / "metrics.json").read_text())
    metrics = dict(fixture_run.metrics)
    new_run = fixture_run
    outcomes = []

    def write() -> None:
        new_run.metrics = {**metrics, "marker": "new"}
        try:
            new_run.save(target, include_data=True, overwrite=True)
        finally:
            new_run.metrics = metrics

    def check(at: int) -> None:
        loaded = Run.load(target)  # recovers, then checks every checksum
        assert loaded.frame is not None, at
        outcomes.append("new" if loaded.metrics.get("marker") == "new" else "old")
        if outcomes[-1] == "old":
            assert json.loads(json.dumps(loaded.metrics)) == old_metrics
        assert leftovers(tmp_path) == [], at
        shutil.rmtree(target)
        fixture_run.save(target, include_data=True)

    steps = every_kill(monkeypatch, write, check)
    assert steps >= 2 * 10 + 3  # every file of the run in two halves, the manifest, the swap
    assert outcomes.count("old") == steps - 1 and outcomes[-1] == "new"
    assert Run.load(target).metrics["marker"] == "new"


def test_save_targets_are_checked_before_any_work(fixture_run, tmp_path):
    saved = fixture_run.save(tmp_path / "run")
    with pytest.raises(RunError, match=r"already holds a saved run: .*--overwrite"):
        check_save_target(saved)
    check_save_target(saved, overwrite=True)
    (saved / "my notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"holds files besides the run \(my notes\.txt\)"):
        check_save_target(saved, overwrite=True)
    assert (saved / "my notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file, not a directory"):
        check_save_target(tmp_path / "file")
    with pytest.raises(RunError, match="is a file, so"):
        check_save_target(tmp_path / "file" / "run")
    (tmp_path / "link").symlink_to(saved)
    with pytest.raises(RunError, match="is a link"):
        check_save_target(tmp_path / "link", overwrite=True)
    check_save_target(tmp_path / "new" / "deeper")  # parents are created when saving
    assert not (tmp_path / "new").exists()  # a check writes nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(RunError, match="cannot be written"):
            check_save_target(locked / "run")
    finally:
        locked.chmod(0o700)


# -- the analysis cache ------------------------------------------------------------------


@pytest.fixture(scope="module")
def explanations(fixture_run):
    frame = fixture_run.frame
    first = explain(fixture_run, frame.head(60), max_rows=60)
    second = explain(fixture_run, frame.tail(60).reset_index(drop=True), max_rows=60)
    return first, second


def test_a_cache_killed_while_it_is_written_is_the_old_cache_or_the_new(
    fixture_run, explanations, tmp_path, monkeypatch
):
    run_dir = fixture_run.save(tmp_path / "run")
    first, second = explanations
    outcomes = []

    def write() -> None:
        save_explanation(second, run_dir, "rows B")

    def check(at: int) -> None:
        a, note_a = load_explanation(run_dir, "rows A")
        b, note_b = load_explanation(run_dir, "rows B")
        assert note_a is None and note_b is None, at
        assert (a is None) != (b is None), at  # one cache, of the rows it says
        if b is not None:  # never A's maps under B's name, nor the reverse
            assert b.rows == second.rows and b.atlas.counts.tolist() == second.atlas.counts.tolist()
        else:
            assert a.rows == first.rows and a.atlas.counts.tolist() == first.atlas.counts.tolist()
        outcomes.append("B" if b is not None else "A")
        assert leftovers(tmp_path) == [], at
        save_explanation(first, run_dir, "rows A")

    save_explanation(first, run_dir, "rows A")
    steps = every_kill(monkeypatch, write, check)
    assert steps >= 5 and outcomes.count("A") == steps - 1 and outcomes[-1] == "B"
    Run.load(run_dir)  # the run beside its cache is untouched


@pytest.mark.parametrize(
    "damage", ["truncate", "flip", "remove", "record", "deep record", "deep atlas, re-hashed"]
)
def test_a_damaged_cache_is_recorded_again_with_a_note(fixture_run, explanations, tmp_path, damage):
    run_dir = fixture_run.save(tmp_path / "run")
    save_explanation(explanations[0], run_dir, "rows A")
    folder = run_dir / ANALYSIS_DIR
    atlas = folder / "atlas.npz"
    if damage == "truncate":
        atlas.write_bytes(atlas.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(atlas.read_bytes())
        data[len(data) // 2] ^= 0xFF
        atlas.write_bytes(bytes(data))
    elif damage == "remove":
        atlas.unlink()
    elif damage == "record":
        (folder / "explanation.json").write_text("{")
    elif damage == "deep record":
        (folder / "explanation.json").write_text("[" * 100_000)
    else:  # as a forger would: the checksum recomputed
        (folder / "atlas.json").write_text("[" * 100_000)
        record = json.loads((folder / "explanation.json").read_text())
        record["files"]["atlas.json"] = file_digest((folder / "atlas.json").read_bytes())
        (folder / "explanation.json").write_text(json.dumps(record))
    cached, note = load_explanation(run_dir, "rows A")
    assert cached is None
    assert note is not None and "damaged" in note and "recorded again" in note


def test_mrta_train_refuses_an_existing_run_before_training(fixture_run, tmp_path, capsys):
    from mrta.cli import main

    saved = fixture_run.save(tmp_path / "run")
    before = folder_state(saved)
    data = tmp_path / "table.csv"
    fixture_run.frame.to_csv(data, index=False)
    code = main(
        ["train", str(data), "--target", "species", "--out", str(saved), "--time-budget", "1"]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert "already holds a saved run" in error and "--overwrite" in error
    assert "epoch" not in error.lower()  # refused before any training
    assert folder_state(saved) == before


def test_folders_being_written_or_set_aside_are_never_listed_as_runs(fixture_run, tmp_path):
    fixture_run.save(tmp_path / "run")
    for kind in ("staging", "replaced"):
        shutil.copytree(tmp_path / "run", tmp_path / f".run.{kind}-{os.getpid()}-0123abcd")
    assert [entry.name for entry in list_runs(tmp_path)] == ["run"]
