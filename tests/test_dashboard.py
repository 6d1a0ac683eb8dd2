"""The dashboard through Streamlit's AppTest: every page, uploads, refusals, figures' JSON."""

from __future__ import annotations

import base64
import gzip
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mrta.figures import shorten

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
TIMEOUT = 120


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.radio(key="source").set_value("Upload a CSV").run()
    at.file_uploader(key="upload").set_value((name, content, "text/csv")).run()
    return at


def wait_for_training(at: AppTest) -> None:
    deadline = time.monotonic() + TIMEOUT
    while at.session_state["job"].running:
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)
    at.run()


def plotly_json(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def z_values(trace: dict) -> np.ndarray:
    """A heatmap's values; plotly sends numeric arrays as typed base64 (``bdata``)."""
    z = trace["z"]
    if isinstance(z, dict):
        flat = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        return flat.reshape([int(n) for n in str(z["shape"]).split(",")])
    return np.asarray(z, dtype=float)


@pytest.fixture(scope="module")
def trained() -> AppTest:
    """The default table, trained once with the smallest budget, then on the Explore page."""
    at = new_app()
    at.switch_page("views/train.py").run()
    at.number_input(key="budget:quick").set_value(5.0)
    at.button[0].click().run()
    wait_for_training(at)
    assert at.session_state["job"].error is None
    return at


def test_opens_on_penguins_ready_to_train():
    at = new_app()
    assert at.header[0].value == "Data"
    assert at.subheader[0].value == "penguins.csv"
    assert "Ready to train: **multiclass** over 3 classes" in at.success[0].value
    assert len(at.dataframe) == 2  # the preview and the editable schema
    schema = at.dataframe[1].value
    assert dict(zip(schema["column"], schema["role"], strict=True))["island"] == "categorical"


def test_pages_without_a_run_say_what_to_do():
    at = new_app()
    for page in ("views/explore.py", "views/export.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert "Train a model" in at.info[0].value


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "empty"),
        ("header.csv", b"a,b,c\n", "header"),
        ("one.csv", b"a,b\n1,2\n", "row"),
        ("book.csv", b"PK\x03\x04" + bytes(100), "zip archive"),
        ("image.csv", b"\x89PNG\r\n\x1a\n" + bytes(50), "PNG image"),
    ],
)
def test_refused_uploads_keep_the_previous_table(name, content, message):
    at = upload(new_app(), name, content)
    assert not at.exception
    assert len(at.error) == 1
    assert f"{name} was not loaded" in at.error[0].value
    assert message in at.error[0].value.lower() or message in at.error[0].value
    assert "The table loaded before is kept" in at.error[0].value
    assert at.subheader[0].value == "penguins.csv"


@pytest.mark.parametrize(
    "name, content, note",
    [
        (
            "latin.csv",
            "name;amount;label\nJosé;1,5;a\nZoë;2,5;b\nAnaïs;3,0;a\n".encode("latin-1"),
            None,
        ),
        ("bom.csv", "\ufeffx,y,label\n1,2,a\n3,4,b\n5,6,a\n".encode(), None),
        ("zipped.csv.gz", gzip.compress(b"x,y,label\n1,2,a\n3,4,b\n5,6,a\n", mtime=0), None),
        ("dupes.csv", b"x,x,label\n1,2,a\n3,4,b\n5,6,a\n", "x"),
    ],
)
def test_real_world_uploads_load(name, content, note):
    at = upload(new_app(), name, content)
    assert not at.exception and not at.error
    assert at.subheader[0].value == name


def test_a_single_class_target_is_refused_with_its_reason():
    at = upload(new_app(), "one_class.csv", b"x,label\n1,a\n2,a\n3,a\n4,a\n")
    at.selectbox(key=f"target:{at.session_state['table'].source_id}").set_value("label").run()
    assert not at.exception
    assert any("class" in e.value.lower() for e in at.error)


def test_training_results_beside_the_baselines(trained):
    at = trained
    assert not at.exception
    assert at.number_input(key="budget:quick").value == 5.0, "the settings survive training"
    table = at.dataframe[0].value
    assert list(table.index) == ["attention model", "gradient boosting", "trivial"]
    assert {"roc_auc", "accuracy"} <= set(table.columns)
    titles = [plotly_json(at, i)["layout"]["title"]["text"] for i in range(3)]
    assert titles == ["Loss per epoch", "Confusion matrix (test split)", "ROC curve (test split)"]


def test_explore_shows_every_head_on_one_scale_with_rows_summing_to_one(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    assert not at.exception
    fig = plotly_json(at)
    heatmaps = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 4, "the default model has four heads"
    assert {t.get("coloraxis") for t in heatmaps} == {"coloraxis"}, "one shared colour scale"
    run = at.session_state["run"]
    numerical = list(run.schema.numerical_tokens)
    short = [shorten(name, 16) for name in numerical]  # long names shortened on the axes...
    assert "flipper_length_…" in short
    assert fig["layout"]["xaxis"]["ticktext"] == short
    assert fig["layout"]["yaxis"]["ticktext"] == short
    for trace in heatmaps:
        assert [cell[1] for cell in trace["customdata"][0]] == numerical  # ...whole on hover
        np.testing.assert_allclose(z_values(trace).sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize(
    "rows", ["a cohort", "difference of two cohorts", "whole dataset", "one row"]
)
def test_explore_aggregations_redraw_without_errors(trained, rows):
    at = trained
    at.switch_page("views/explore.py").run()
    at.selectbox(key="x_map").set_value("cat_num").run()
    at.selectbox(key="x_rows").set_value(rows).run()
    assert not at.exception and not at.error
    if rows == "one row":
        assert "Select a row" in at.info[-1].value
    else:
        assert at.get("plotly_chart")


def test_the_colour_scale_can_be_fitted_to_the_values(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    at.selectbox(key="x_rows").set_value("whole dataset").run()
    assert plotly_json(at)["layout"]["coloraxis"]["cmin"] == 0
    at.toggle(key="x_fit").set_value(True).run()
    fitted = plotly_json(at)["layout"]["coloraxis"]
    assert 0 < fitted["cmin"] < fitted["cmax"]
    at.toggle(key="x_fit").set_value(False).run()


def test_one_head_large_and_the_head_table(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    at.selectbox(key="x_rows").set_value("whole dataset").run()
    at.selectbox(key="x_head").set_value(2).run()
    fig = plotly_json(at)
    assert len([t for t in fig["data"] if t["type"] == "heatmap"]) == 1
    assert "head 2" in fig["layout"]["title"]["text"]
    heads = at.dataframe[-1].value
    assert {"entropy", "divergence", "max_weight"} <= set(heads.columns)
    assert len(heads) == 2 * 4 * 4  # layers x maps x heads


def test_checks_run_on_demand(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    at.button(key="x_checks").click().run()
    assert not at.exception
    assert any("Spearman" in m.label for m in at.metric)


def test_export_offers_every_download(trained):
    at = trained
    at.switch_page("views/export.py").run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    for wanted in ("HTML report", "Maps (.npz)", "Tidy CSV", "figure", "run (.zip)"):
        assert any(wanted in label for label in labels), wanted


def test_the_run_zip_holds_a_loadable_run_and_its_analysis(trained, tmp_path):
    import io
    import zipfile

    from dashboard.views.export import _run_zip
    from mrta.explain import load_explanation
    from mrta.runs import Run

    run, explanation = trained.session_state["run"], trained.session_state["explanation"]
    with zipfile.ZipFile(
        io.BytesIO(_run_zip(run, explanation, True, "penguins-species"))
    ) as archive:
        archive.extractall(tmp_path)
    loaded = Run.load(tmp_path / "run")
    assert loaded.frame is not None and len(loaded.frame) == len(run.frame)
    cached = load_explanation(tmp_path / "run", source="dashboard:penguins-species")
    assert cached is not None and cached.rows == explanation.rows
    np.testing.assert_allclose(
        cached.atlas.means[(0, "cat_num")], explanation.atlas.means[(0, "cat_num")]
    )
    assert load_explanation(tmp_path / "run", source="other rows") is None


def test_a_failure_inside_training_is_a_message_and_the_app_keeps_working(monkeypatch):
    import mrta.runs

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(mrta.runs, "train_run", broken)
    at = new_app()
    at.switch_page("views/train.py").run()
    at.button[0].click().run()
    wait_for_training(at)
    assert not at.exception
    assert any("Training failed: RuntimeError: the disk is full" in e.value for e in at.error)
    at.switch_page("views/data.py").run()
    assert not at.exception and at.subheader[0].value == "penguins.csv"
