"""Zipped runs and runs folders: round trips to the same numbers, every refusal, listings."""

from __future__ import annotations

import io
import json
import shutil
import stat
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta import cli
from mrta.errors import ArchiveError, RunError, TableError
from mrta.pipelines.archive import (
    RUNS_DIR_ENV,
    RunOnOtherRows,
    check_rows,
    explore_on,
    format_created,
    frame_source,
    list_runs,
    open_run_dir,
    open_zip,
    runs_folder,
    source_key,
    trained_on,
    zip_run,
)
from mrta.pipelines.explain import DEFAULT_MAX_ROWS, explain
from mrta.pipelines.train_run import train_run
from mrta.runs.manifest import FORMAT_VERSION, MANIFEST, ONE_MODEL_FORMAT_VERSION
from mrta.runs.run import Run

ONE_EPOCH = replace(QUICK, max_epochs=1)


@pytest.fixture(scope="module")
def run() -> Run:
    return train_run(
        tiny_frame("multiclass", rows=120), "y", model_config=TINY_MODEL, train_config=ONE_EPOCH
    )


@pytest.fixture(scope="module")
def explanation(run):
    return explain(run)


@pytest.fixture(scope="module")
def zipped(run, explanation) -> bytes:
    return zip_run(run, explanation, include_data=True, folder="tiny-run")


def rezip(data: bytes, change) -> bytes:
    """``data`` with ``change(name, bytes)`` applied to every entry (it returns new bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, change(info.filename, source.read(info)))
    return out.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


@pytest.mark.slow
def test_a_zipped_run_opens_with_the_same_predictions_and_its_analysis(run, explanation, zipped):
    opened = open_zip(zipped, name="tiny.zip")
    frame = tiny_frame("multiclass", rows=30, seed=3)
    pd.testing.assert_frame_equal(opened.run.predict_frame(frame), run.predict_frame(frame))
    pd.testing.assert_frame_equal(opened.run.frame, run.frame, check_dtype=False)
    assert opened.name == "tiny.zip" and "tiny.zip" in opened.where
    assert opened.format_version == ONE_MODEL_FORMAT_VERSION and opened.created
    # the analysis was cached under the key of the rows saved with the run: it is found again
    key = opened.saved_rows_source(DEFAULT_MAX_ROWS)
    assert key == frame_source(run.frame, DEFAULT_MAX_ROWS)
    cached = opened.cached_for(key)
    assert cached is not None and cached.rows == explanation.rows
    for map_key, mean in explanation.atlas.means.items():
        np.testing.assert_allclose(cached.atlas.means[map_key], mean)
    assert opened.cached_for("sha256:other rows") is None


@pytest.mark.slow
def test_a_run_at_the_root_of_a_zip_without_rows_opens(run, tmp_path):
    folder = run.save(tmp_path / "run")
    data = make_zip({p.name: p.read_bytes() for p in folder.iterdir()})
    opened = open_zip(data)
    assert opened.run.frame is None and opened.cached is None
    assert opened.saved_rows_source(DEFAULT_MAX_ROWS) is None


@pytest.mark.slow
def test_mac_and_windows_zips_open(zipped):
    with_junk = make_zip(
        {
            **{
                name.replace("/", "\\"): content
                for name, content in _entries(zipped).items()
                if not name.startswith("tiny-run/analysis")
            },
            "__MACOSX/tiny-run/._manifest.json": b"\x00",
            "tiny-run/.DS_Store": b"\x00",
        }
    )
    assert open_zip(with_junk).run.schema.target == "y"


def _entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _flag_encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' bit in every local and central header of ``data``."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = out.find(signature)
        while start != -1:
            out[start + offset] |= 1
            start = out.find(signature, start + 4)
    return bytes(out)


def _with_link(data: bytes) -> bytes:
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as archive:
        link = zipfile.ZipInfo("tiny-run/data2.csv")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return out.getvalue()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda z: b"just some text, not a zip", "is not a zip file"),
        (lambda z: z[: len(z) // 2], "is not a zip file"),
        (lambda z: make_zip({}), "empty zip"),
        (lambda z: make_zip({"notes/readme.txt": b"hi"}), "holds no saved run"),
        (lambda z: make_zip({"a/b/manifest.json": b"{}"}), "holds no saved run"),
        (lambda z: make_zip({"a/manifest.json": b"{}", "b/manifest.json": b"{}"}), "2 runs"),
        (lambda z: make_zip({"../../evil.txt": b"x", "manifest.json": b"{}"}), "outside the run"),
        (lambda z: make_zip({"run/../../evil": b"x"}), "outside the run"),
        (lambda z: make_zip({"..\\evil.txt": b"x"}), "outside the run"),
        (lambda z: make_zip({"/etc/cron.d/evil": b"x"}), "outside the run"),
        (lambda z: make_zip({"C:/evil": b"x"}), "outside the run"),
        (_with_link, "holds a link"),
        (_flag_encrypted, "encrypted"),
        (lambda z: make_zip({"run/x": b"a", "run/x\\": b"b", "run/./x": b"c"}), "twice"),
    ],
)
@pytest.mark.slow
def test_unsafe_or_broken_zips_are_refused_before_anything_is_written(
    zipped, make, message, monkeypatch
):
    def no_extraction(*args, **kwargs):
        raise AssertionError("nothing may be extracted from a refused zip")

    if message not in ("is not a zip file",):
        monkeypatch.setattr("mrta.pipelines.archive._extract", no_extraction)
    with pytest.raises(ArchiveError, match=message) as refused:
        open_zip(make(zipped), name="upload.zip")
    assert str(refused.value).startswith("upload.zip")
    assert "\n" not in str(refused.value)


@pytest.mark.slow
def test_zip_bombs_are_refused_by_count_and_by_size(zipped):
    many = make_zip({f"run/{i}.txt": b"" for i in range(300)})
    with pytest.raises(ArchiveError, match="300 entries, more than the 200"):
        open_zip(many)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("run/manifest.json", b"\0" * 5_000_000)
    bomb = out.getvalue()
    assert len(bomb) < 20_000
    with pytest.raises(ArchiveError, match="unpacks to 5,000,000 bytes, more than the limit"):
        open_zip(bomb, max_bytes=1_000_000)
    with pytest.raises(ArchiveError, match=r"unpacks to .* more than the limit of 10,000"):
        open_zip(zipped, max_bytes=10_000)


@pytest.mark.slow
def test_the_bytes_really_unpacked_are_counted_too(zipped, tmp_path):
    from mrta.pipelines.archive import _extract, _run_members

    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        root, members = _run_members(archive, "z", 200, 10**9)
        with pytest.raises(ArchiveError, match="unpacks to more than"):
            _extract(archive, members, root, tmp_path / "out", "z", max_bytes=10_000)


@pytest.mark.slow
def test_a_damaged_zip_entry_is_refused(zipped):
    data = bytearray(zipped)
    weights = data.find(b"tiny-run/weights.safetensors") + 200  # inside its compressed data
    data[weights : weights + 50] = bytes(50)
    with pytest.raises(RunError, match=r"damaged|not a zip|checksum"):
        open_zip(bytes(data), name="bad.zip")


@pytest.mark.slow
def test_altered_weights_are_refused_without_showing_the_temporary_folder(zipped):
    def tamper(name: str, content: bytes) -> bytes:
        if name.endswith("weights.safetensors"):
            content = bytearray(content)
            content[-1] ^= 1
            return bytes(content)
        return content

    with pytest.raises(RunError) as refused:
        open_zip(rezip(zipped, tamper), name="tampered.zip")
    message = str(refused.value)
    assert "weights.safetensors" in message and "does not match its checksum" in message
    assert "'tampered.zip'" in message and "mrta-open-" not in message


@pytest.mark.slow
def test_a_newer_format_version_is_refused(zipped):
    def newer(name: str, content: bytes) -> bytes:
        if name.endswith(MANIFEST):
            manifest = json.loads(content)
            manifest["format_version"] = FORMAT_VERSION + 1
            return json.dumps(manifest).encode()
        return content

    newer_than = rf"run format {FORMAT_VERSION + 1}, newer than the format {FORMAT_VERSION}"
    with pytest.raises(RunError, match=newer_than + ".*upgrade"):
        open_zip(rezip(zipped, newer), name="future.zip")


@pytest.mark.slow
def test_an_unreadable_cached_analysis_is_recorded_again_not_a_failure(zipped):
    def broken(name: str, content: bytes) -> bytes:
        return b"not an npz" if name.endswith("atlas.npz") else content

    opened = open_zip(rezip(zipped, broken))
    assert opened.cached is None
    assert any("recorded again" in note for note in opened.notes)


@pytest.mark.slow
def test_the_runs_of_a_folder_are_listed_newest_first_with_what_cannot_open(run, tmp_path):
    old = run.save(tmp_path / "old")
    new = run.save(tmp_path / "new", include_data=True)
    for path, created in ((old, "2024-01-01T00:00:00+00:00"), (new, "2025-06-01T08:30:00+00:00")):
        manifest = json.loads((path / MANIFEST).read_text())
        (path / MANIFEST).write_text(json.dumps({**manifest, "created": created}))
    future = tmp_path / "future"
    shutil.copytree(old, future)
    manifest = json.loads((future / MANIFEST).read_text())
    (future / MANIFEST).write_text(json.dumps({**manifest, "format_version": 9}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST).write_text("{not json")
    (tmp_path / "notes").mkdir()  # not a run: left out
    (tmp_path / "notes" / "todo.txt").write_text("x")
    (tmp_path / "loose.csv").write_text("a,b\n")

    entries = list_runs(tmp_path)
    assert [e.name for e in entries] == ["new", "old", "future", "broken"]
    assert entries[0].rows_saved and not entries[1].rows_saved
    assert (entries[0].target, entries[0].task) == ("y", "multiclass")
    assert entries[0].label == "new · 2025-06-01 08:30 UTC · multiclass → y · rows saved"
    assert f"newer than the format {FORMAT_VERSION}" in entries[2].problem
    assert "not readable JSON" in entries[3].problem
    assert entries[1].problem is None
    opened = open_run_dir(entries[1].path)
    assert opened.name == "old" and str(tmp_path) in opened.where
    with pytest.raises(RunError, match="does not exist"):
        list_runs(tmp_path / "missing")


def test_the_runs_folder_comes_from_the_environment_or_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs_folder({}) == (None, "not set")
    (tmp_path / "runs").mkdir()
    assert runs_folder({})[0] == tmp_path / "runs"
    assert runs_folder({RUNS_DIR_ENV: "/srv/runs"})[0] == Path("/srv/runs")
    assert format_created("2024-05-01T12:00:00+00:00") == "2024-05-01 12:00 UTC"
    assert format_created(None) == "unknown date"


def test_mrta_dashboard_passes_its_runs_folder_to_the_app(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(RUNS_DIR_ENV, "before")  # restored after the test
    calls = []

    class Done:
        returncode = 0

    monkeypatch.setattr(
        cli.dashboard.subprocess, "run", lambda command, check: calls.append(command) or Done
    )
    assert cli.main(["dashboard", "--runs-dir", str(tmp_path), "--server.port", "8502"]) == 0
    assert calls[0][-2:] == ["--server.port", "8502"]
    assert cli.dashboard.os.environ[RUNS_DIR_ENV] == str(tmp_path.resolve())
    assert cli.main(["dashboard", "--runs-dir", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_the_dashboard_and_mrta_explain_share_the_cached_analysis(run, tmp_path):
    folder = run.save(tmp_path / "run")
    data = tmp_path / "rows.csv"
    run.frame.to_csv(data, index=False)
    assert cli.main(["explain", str(folder), str(data), "--out", str(tmp_path / "out")]) == 0
    opened = open_run_dir(folder)
    key = source_key(data.read_bytes(), DEFAULT_MAX_ROWS)
    assert opened.cached_for(key) is not None
    assert key == frame_source(run.frame, DEFAULT_MAX_ROWS)  # the same bytes


@pytest.mark.slow
def test_rows_that_do_not_fit_the_run_are_refused_with_the_reason(run):
    frame = run.frame
    assert check_rows(run, frame) == len(frame)
    with pytest.raises(TableError, match="'x1'"):
        check_rows(run, frame.drop(columns=["x1"]))
    with pytest.raises(TableError, match="target column 'y'"):
        check_rows(run, frame.drop(columns=["y"]))
    with pytest.raises(TableError, match="does not know"):
        check_rows(run, frame.assign(y="unheard of"))
    with pytest.raises(TableError, match="None of the 120 rows"):
        check_rows(run, frame.assign(y=None))


@pytest.mark.slow
def test_a_run_explored_on_other_rows_refuses_its_split(run, tmp_path):
    same = explore_on(run, run.frame.copy())
    assert trained_on(run, run.frame) and type(same) is Run
    assert len(same.rows("validation")) == len(run.splits.validation)
    other = tiny_frame("multiclass", rows=120, seed=9)  # as many rows, other classes per split
    assert not trained_on(run, other)
    assert not trained_on(run, tiny_frame("multiclass", rows=80))
    explored = explore_on(run, other)
    assert isinstance(explored, RunOnOtherRows) and explored.frame is other
    assert run.frame is not other, "the run itself is left alone"
    with pytest.raises(RunError, match="other rows than it was trained on"):
        explored.rows("validation")
    with pytest.raises(RunError, match="save the run without its rows"):
        explored.save(tmp_path / "x", include_data=True)
    assert Run.load(explored.save(tmp_path / "y")).frame is None


@pytest.fixture(scope="module")
def set_run() -> Run:
    from test_sets import planted_table

    from mrta.data.sets import SetOptions

    frame = planted_table(60, seed=5)
    frame["day"] = np.arange(len(frame)) % 17
    frame.loc[3, "label"] = None  # a row without a target: its group's rows are still trained on
    options = SetOptions("g", order_by="day", max_set_size=8)
    return train_run(frame, "label", model_config=TINY_MODEL, train_config=ONE_EPOCH, sets=options)


@pytest.mark.slow
def test_a_set_run_zips_opens_and_checks_its_group_columns(set_run):
    opened = open_zip(zip_run(set_run, include_data=True), name="sets.zip")
    assert opened.run.sets == set_run.sets and opened.cached is None
    frame = set_run.frame
    assert trained_on(set_run, frame)
    assert not trained_on(set_run, frame.drop(columns=["g"]))
    assert not trained_on(set_run, frame.iloc[: len(frame) // 2])
    with pytest.raises(TableError, match="group key column 'g'"):
        check_rows(set_run, frame.drop(columns=["g"]))
    with pytest.raises(TableError, match="'day'"):
        check_rows(set_run, frame.drop(columns=["day"]))


def _renamed_entries(zipped: bytes, extra: dict[str, bytes]) -> bytes:
    """The run's zip with `extra` entries added under its folder."""
    entries = _entries(zipped)
    entries.update({f"tiny-run/{name}": content for name, content in extra.items()})
    return make_zip(entries)


@pytest.mark.parametrize(
    "extra",
    [
        {"a" * 300: b"x"},  # a name longer than any file system takes
        {"d/" * 2100 + "x": b"x"},  # a path longer than Linux takes (PATH_MAX 4096)
        {"weights.safetensors/inside": b"x"},  # a file and a folder of the same name
    ],
    ids=["long name", "deep name", "file and folder"],
)
@pytest.mark.slow
def test_a_crafted_zip_is_one_message_whatever_python_raises(zipped, extra):
    with pytest.raises(RunError) as refused:
        open_zip(_renamed_entries(zipped, extra), name="crafted.zip")
    message = str(refused.value)
    assert message.startswith("crafted.zip") and "\n" not in message
    assert "mrta-open-" not in message, "no server path in the message"
