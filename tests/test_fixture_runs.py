"""Runs saved before the package moved into subpackages still load and predict the same.

``tests/fixtures/run_v1_row`` and ``run_v1_set`` were saved, with their rows, by the code of
commit 1b1574f, and ``run_v1_*_expected.json`` hold what that code predicted for them
(``tests/fixtures/make_fixtures.py`` says how they were made). Loading them with today's code
must give the same predictions, and the manifest's checksums must still guard every file.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mrta.data.sets import SetOptions
from mrta.runs.manifest import MANIFEST, WEIGHTS
from mrta.runs.run import Run, RunError

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = ("run_v1_row", "run_v1_set")


def expected(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}_expected.json").read_text())


@pytest.mark.parametrize("name", RUNS)
def test_a_run_saved_before_the_move_predicts_what_it_predicted_then(name):
    run = Run.load(FIXTURES / name)
    want = expected(name)
    predictions = run.predict_frame(run.frame.head(want["input_rows"]))
    assert list(predictions.columns) == list(want["columns"])
    assert list(predictions.index) == want["index"]
    for column, values in want["columns"].items():
        if isinstance(values[0], str):
            assert predictions[column].astype(str).tolist() == values, column
        else:
            got = predictions[column].to_numpy(dtype=float)
            np.testing.assert_allclose(got, values, rtol=0, atol=1e-6, err_msg=column)


def test_the_saved_runs_are_what_they_say():
    row, set_run = (Run.load(FIXTURES / name) for name in RUNS)
    assert row.sets is None and row.schema.target == "species"
    assert row.class_labels == ("Adelie", "Chinstrap", "Gentoo")
    assert len(row.frame) == 200 and row.schema.task.value == "multiclass"
    assert set_run.sets == SetOptions("portfolio_id", max_set_size=16)
    assert set_run.schema.target == "aggressive" and set_run.frame["portfolio_id"].nunique() == 24
    for run in (row, set_run):
        assert run.model_config.d_model == 8 and run.model_config.num_layers == 1
        assert run.train_config.seed == 0 and run.init_seed == 0


@pytest.mark.parametrize("name", RUNS)
def test_every_file_of_a_saved_run_is_in_its_manifest_with_its_checksum(name):
    folder = FIXTURES / name
    manifest = json.loads((folder / MANIFEST).read_text())
    assert (manifest["format"], manifest["format_version"]) == ("mrta-run", 1)  # as saved then
    listed = manifest["files"]
    on_disk = {path.name for path in folder.iterdir()} - {MANIFEST}
    assert set(listed) == on_disk
    for file, digest in listed.items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest, file


@pytest.mark.parametrize("name", RUNS)
@pytest.mark.parametrize("file", [WEIGHTS, "preprocessor.json", "data.csv"])
def test_a_run_with_one_byte_changed_is_refused(name, file, tmp_path):
    copy = Path(shutil.copytree(FIXTURES / name, tmp_path / name))
    Run.load(copy)  # the intact copy loads
    data = bytearray((copy / file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / file).write_bytes(bytes(data))
    with pytest.raises(RunError, match=f"file {file} .* does not match its checksum"):
        Run.load(copy)
