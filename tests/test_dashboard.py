"""The dashboard through Streamlit's AppTest: every page, uploads, refusals, figures' JSON."""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mrta.report.figures import shorten

APP = str(Path(__file__).resolve().parents[1] / "mrta_dashboard" / "app.py")
TIMEOUT = 120


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def test_the_app_shows_no_traceback_whatever_folder_the_server_starts_from():
    import streamlit as st

    st.set_option("client.showErrorDetails", "full")  # as if no config file were read
    new_app()
    assert st.get_option("client.showErrorDetails") == "none"


def plain(markdown: str) -> str:
    """What a reader sees of Markdown whose data-derived parts were escaped (backslashes gone)."""
    return re.sub(r"\\(.)", r"\1", markdown)


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


@pytest.mark.slow
def test_training_results_beside_the_baselines(trained):
    at = trained
    assert not at.exception
    assert at.number_input(key="budget:quick").value == 5.0, "the settings survive training"
    table = at.dataframe[0].value
    assert list(table.index) == ["attention model", "gradient boosting", "trivial"]
    assert {"roc_auc", "accuracy"} <= set(table.columns)
    control = at.session_state["control_job"]  # the ROC curve comes with the verdict, scored first
    while control.partial is None and control.running:
        time.sleep(0.2)
    at.run()
    titles = [plotly_json(at, i)["layout"]["title"]["text"] for i in range(3)]
    assert titles == ["Loss per epoch", "Confusion matrix (test split)", "ROC curve (test split)"]


@pytest.mark.slow
def test_explore_shows_every_head_on_one_scale_with_rows_summing_to_one(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    at.selectbox(key="x_layer").set_value(0).run()
    at.selectbox(key="x_map").set_value("num_num").run()
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
@pytest.mark.slow
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


@pytest.mark.slow
def test_the_colour_scale_can_be_fitted_to_the_values(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    at.selectbox(key="x_rows").set_value("whole dataset").run()
    assert at.radio(key="x_fit").value == "centred", "diverging around uniform by default"
    at.radio(key="x_fit").set_value("zero").run()
    assert plotly_json(at)["layout"]["coloraxis"]["cmin"] == 0
    at.radio(key="x_fit").set_value("fit").run()
    fitted = plotly_json(at)["layout"]["coloraxis"]
    assert 0 < fitted["cmin"] < fitted["cmax"]
    at.radio(key="x_fit").set_value("centred").run()


@pytest.mark.slow
def test_one_head_large_and_the_head_table(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    at.selectbox(key="x_rows").set_value("whole dataset").run()
    at.selectbox(key="x_head").set_value(2).run()
    fig = plotly_json(at)
    assert len([t for t in fig["data"] if t["type"] == "heatmap"]) == 1
    assert "head 2" in fig["layout"]["title"]["text"]
    heads = at.dataframe[-1].value
    assert {"entropy per row (0–1)", "moved in training (bits)", "largest mean weight"} <= set(
        heads.columns
    )
    assert len(heads) == 4  # the map in view's heads; every head on demand (test_readable_views)


@pytest.mark.slow
def test_checks_run_on_demand(trained):
    at = trained
    at.switch_page("views/explore.py").run()
    at.button(key="x_checks").click().run()
    assert not at.exception
    assert any("Spearman" in m.label for m in at.metric)


@pytest.mark.slow
def test_a_filters_maps_are_cached_by_the_runs_uid_not_its_id(trained):
    """Python gives a freed run's id() to the next object: a cache keyed by id(run) shows a new
    run the maps of the run before it. Here the cache holds, under the session's run's id(), an
    old run's filter atlas that fails when drawn; a cache keyed by Run.uid never reads it."""
    from mrta_dashboard import keys

    class OldRunsAtlas:
        def cohort_map(self, *args, **kwargs):
            raise AssertionError("a previous run's filter map was shown")

    at = trained
    run = at.session_state["run"]
    name = "bill_length_mm > 45"
    at.switch_page("views/explore.py").run()
    at.selectbox(key="x_map").set_value("num_num").run()
    at.selectbox(key="x_rows").set_value("filter").run()
    at.selectbox(key="x_fcol").set_value("bill_length_mm")
    at.selectbox(key="x_fop").set_value(">")
    at.session_state[keys.FILTERS] = {(id(run), name): OldRunsAtlas()}
    at.text_input(key="x_fval").set_value("45").run()
    assert not at.exception and not at.error
    rows = int((run.frame["bill_length_mm"] > 45).sum())
    assert f"{rows:,} rows: whole table." in [c.value for c in at.caption]
    assert set(at.session_state[keys.FILTERS]) == {(run.uid, name)}, "the old entry is dropped"
    atlas, cohort = at.session_state[keys.FILTERS][(run.uid, name)]
    assert cohort == ("filter", name) and atlas.cohort_map(0, "num_num", cohort).count == rows
    at.selectbox(key="x_rows").set_value("whole dataset").run()


def test_every_widget_of_the_explore_page_goes_with_the_run():
    """The Explore page's choices (layers, cohorts, rows) belong to one run: each of its
    widgets' keys is among those dropped when another run replaces it."""
    import re

    from mrta_dashboard import keys

    root = Path(APP).parent
    files = [
        "views/explore.py",
        "parts/maps.py",
        "parts/checks.py",
        "parts/ablation.py",
        "parts/set_browser.py",
        "parts/difference.py",
        "parts/heads.py",
        "parts/importance.py",
        "parts/one_row.py",
    ]
    used = {
        name
        for file in files
        for name in re.findall(r"key=keys\.([A-Z_]+)\b", (root / file).read_text())
    }
    assert {"LAYER", "MAP", "ROWS", "FILTER_VALUE", "SET_MAP"} <= used
    assert [name for name in sorted(used) if getattr(keys, name) not in keys.RUN_VIEWS] == []
    assert all(keys.set_picker(how) in keys.RUN_VIEWS for how in keys.SET_FILTERS)
    assert all(keys.row_picker(how) in keys.RUN_VIEWS for how in keys.ROW_LISTS)


@pytest.mark.slow
def test_export_offers_every_download(trained):
    at = trained
    at.switch_page("views/export.py").run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    for wanted in ("HTML report", "Maps (.npz)", "Tidy CSV", "figure", "run (.zip)"):
        assert any(wanted in label for label in labels), wanted


@pytest.mark.slow
def test_the_run_zip_holds_a_loadable_run_and_its_analysis(trained, tmp_path):
    import io
    import zipfile

    from mrta.pipelines.analysis_cache import load_explanation
    from mrta.pipelines.archive import frame_source
    from mrta.pipelines.explain import DEFAULT_MAX_ROWS
    from mrta.runs.run import Run
    from mrta_dashboard.views.export import _run_zip

    run, explanation = trained.session_state["run"], trained.session_state["explanation"]
    with zipfile.ZipFile(
        io.BytesIO(_run_zip(run, explanation, True, "penguins-species"))
    ) as archive:
        archive.extractall(tmp_path)
    folder = tmp_path / "penguins-species-run"
    loaded = Run.load(folder)
    assert loaded.frame is not None and len(loaded.frame) == len(run.frame)
    cached, note = load_explanation(folder, source=frame_source(run.frame, DEFAULT_MAX_ROWS))
    assert cached is not None and note is None and cached.rows == explanation.rows
    np.testing.assert_allclose(
        cached.atlas.means[(0, "cat_num")], explanation.atlas.means[(0, "cat_num")]
    )
    assert load_explanation(folder, source="other rows") == (None, None)


@pytest.mark.slow
def test_a_failure_inside_training_is_a_message_and_the_app_keeps_working(monkeypatch):
    import importlib

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    # the module (the package's attribute of the same name is the function)
    module = importlib.import_module("mrta.pipelines.train_run")
    monkeypatch.setattr(module, "train_run", broken)
    at = new_app()
    at.switch_page("views/train.py").run()
    at.button[0].click().run()
    wait_for_training(at)
    assert not at.exception
    assert any(
        "Training failed: RuntimeError: the disk is full" in plain(e.value) for e in at.error
    )
    at.switch_page("views/data.py").run()
    assert not at.exception and at.subheader[0].value == "penguins.csv"


# -- Open run: a saved run from a zip or the runs folder -----------------------------------------
@pytest.fixture(scope="module")
def tiny():
    """A one-epoch run on a small table, and its explanation."""
    from dataclasses import replace

    from test_train import QUICK, TINY_MODEL, tiny_frame

    from mrta.pipelines.explain import explain
    from mrta.pipelines.train_run import train_run

    run = train_run(
        tiny_frame("multiclass", rows=120),
        "y",
        model_config=TINY_MODEL,
        train_config=replace(QUICK, max_epochs=1),
    )
    return run, explain(run)


def open_page(at: AppTest, source: str = "Upload a zipped run") -> AppTest:
    at.switch_page("views/open_run.py").run()
    at.radio(key="o_source").set_value(source).run()
    assert not at.exception
    return at


def upload_zip(at: AppTest, data: bytes, name: str = "tiny-y-run.zip") -> AppTest:
    round_ = at.session_state["o_round"]
    at.file_uploader(key=f"o_zip:{round_}").set_value((name, data, "application/zip")).run()
    assert not at.exception
    return at


def wait_for_opening(at: AppTest) -> None:
    deadline = time.monotonic() + TIMEOUT
    while "open_job" in at.session_state and at.session_state["open_job"].running:
        assert time.monotonic() < deadline, "opening did not finish"
        time.sleep(0.3)
    at.run()


def explore_heatmaps(at: AppTest) -> list[dict]:
    at.switch_page("views/explore.py").run()
    assert not at.exception and not at.error
    return [t for t in plotly_json(at)["data"] if t["type"] == "heatmap"]


@pytest.mark.slow
def test_a_run_from_the_runs_folder_is_explored_like_one_trained_here(tiny, tmp_path, monkeypatch):
    from mrta.pipelines.archive import RUNS_DIR_ENV

    run, _ = tiny
    run.save(tmp_path / "tiny", include_data=True)
    (tmp_path / "not-a-run").mkdir()
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    at = open_page(new_app(), "From the runs folder")
    picker = at.selectbox(key="o_dir")
    assert picker.options == [f"tiny · {_created(tmp_path / 'tiny')} · multiclass → y · rows saved"]
    picker.set_value(str(tmp_path / "tiny")).run()
    assert not at.exception and not at.error
    assert at.subheader[0].value == "tiny"
    assert at.radio(key="o_rows").value == "saved"
    assert any("the rows the run was trained on" in c.value for c in at.caption)
    at.button(key="o_open").click().run()
    wait_for_opening(at)
    assert not at.exception and not at.error
    opened = at.session_state["run"]
    assert opened.frame is not None and len(opened.frame) == len(run.frame)
    assert "Open now: **tiny** from the runs folder" in at.success[0].value
    assert any("Run: **tiny**" in c.value for c in at.sidebar.caption)
    heatmaps = explore_heatmaps(at)
    assert len(heatmaps) == 2, "the tiny model has two heads"
    np.testing.assert_allclose(z_values(heatmaps[0]).sum(axis=1), 1.0, atol=1e-4)
    at.button(key="x_checks").click().run()  # its own training rows: the checks run
    assert not at.exception and any("Spearman" in m.label for m in at.metric)
    at.switch_page("views/data.py").run()
    assert at.subheader[0].value == "penguins.csv", "the table stays loaded"


def _created(path: Path) -> str:
    from mrta.pipelines.archive import format_created

    return format_created(json.loads((path / "manifest.json").read_text())["created"])


def test_a_missing_runs_folder_says_how_to_configure_it(tmp_path, monkeypatch):
    from mrta.pipelines.archive import RUNS_DIR_ENV

    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "nowhere"))
    at = open_page(new_app(), "From the runs folder")
    assert "does not exist" in at.info[0].value and "--runs-dir" in at.info[0].value
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    at.run()
    assert "holds no saved run" in at.info[0].value


@pytest.mark.slow
def test_a_run_zipped_by_the_export_page_opens_at_once_with_its_analysis(tiny, monkeypatch):
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    from mrta_dashboard.views.export import _run_zip

    released = []
    monkeypatch.setattr(
        MemoryUploadedFileManager,
        "remove_file",
        lambda self, session_id, file_id: released.append(file_id),
    )

    run, explanation = tiny
    at = open_page(new_app())
    at.session_state["run"], at.session_state["explanation"] = run, explanation  # trained here
    upload_zip(at, _run_zip(run, explanation, True, "tiny-y"))
    assert not at.error
    assert at.checkbox(key="o_recompute").value is False  # the saved analysis fits the rows
    assert "not saved: opening this run replaces it" in at.warning[0].value
    assert at.button(key="o_open").disabled, "replacing a run trained here is confirmed first"
    at.checkbox(key="o_replace").check().run()
    at.button(key="o_open").click().run()
    assert not at.exception and not at.error
    assert "open_job" not in at.session_state, "no recording: the cached analysis is used"
    assert at.session_state["run"] is not run
    cached = at.session_state["explanation"]
    np.testing.assert_allclose(
        cached.atlas.means[(0, "num_num")], explanation.atlas.means[(0, "num_num")]
    )
    assert at.session_state["o_round"] == 1 and len(released) == 1, "the zip's bytes are freed"
    assert len(explore_heatmaps(at)) == 2


@pytest.mark.slow
def test_a_damaged_zip_is_refused_and_the_table_and_run_are_kept(tiny):
    from mrta.pipelines.archive import zip_run

    run, explanation = tiny
    data = bytearray(zip_run(run, explanation))
    data[-200:-150] = bytes(50)  # inside the central directory
    at = open_page(new_app())
    at.session_state["run"], at.session_state["explanation"] = run, explanation
    upload_zip(at, bytes(data), "broken.zip")
    assert len(at.error) == 1
    assert at.error[0].value.startswith("broken.zip")
    assert "Nothing was changed: the table and the run open before are kept." in at.error[0].value
    assert at.session_state["run"] is run and at.session_state["table"].name == "penguins.csv"
    assert len(explore_heatmaps(at)) == 2


@pytest.mark.slow
def test_a_tampered_run_is_refused_with_its_reason(tiny):
    import io
    import zipfile

    from mrta.pipelines.archive import zip_run

    run, explanation = tiny
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(zip_run(run, explanation))) as source,
        zipfile.ZipFile(out, "w") as target,
    ):
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith("metrics.json"):
                content = content.replace(b"0.", b"1.", 1)
            target.writestr(info.filename, content)
    at = upload_zip(open_page(new_app()), out.getvalue(), "edited.zip")
    assert (
        "metrics.json of the run at 'edited.zip' does not match its checksum" in at.error[0].value
    )
    assert "run" not in at.session_state


@pytest.mark.slow
def test_rows_that_do_not_fit_the_run_are_refused_and_other_rows_are_flagged(tiny):
    from mrta.pipelines.archive import zip_run

    run, explanation = tiny
    at = upload_zip(open_page(new_app()), zip_run(run, explanation))  # without its rows
    assert at.radio(key="o_rows").options == [
        "The table loaded in this session (penguins.csv)",
        "Upload a CSV",
    ]
    assert "lacks the column(s) 'x1', 'x2', 'color', 'size'" in plain(at.error[0].value)
    assert "o_open" not in [button.key for button in at.button]
    at.radio(key="o_rows").set_value("upload").run()
    other = tiny_frame_csv(seed=5)
    at.file_uploader(key="o_csv:0").set_value(("new.csv", other, "text/csv")).run()
    assert not at.exception and not at.error
    assert "not the rows the run was trained on" in at.warning[0].value
    at.button(key="o_open").click().run()
    wait_for_opening(at)
    assert not at.exception and not at.error
    assert "explored on the uploaded new.csv (other rows)" in at.success[0].value
    assert len(explore_heatmaps(at)) == 2
    at.button(key="x_checks").click().run()
    assert not at.exception
    assert "other rows than it was trained on" in at.error[0].value


def tiny_frame_csv(seed: int) -> bytes:
    from test_train import tiny_frame

    return tiny_frame("multiclass", rows=90, seed=seed).to_csv(index=False).encode()


@pytest.mark.slow
def test_a_set_run_opens_with_its_sets_recorded(tmp_path):
    from test_sets import planted_table

    from mrta.analysis.sets import SetExplanation
    from mrta.config import ModelConfig, TrainConfig
    from mrta.data.sets import SetOptions
    from mrta.pipelines.archive import zip_run
    from mrta.pipelines.train_run import train_run

    run = train_run(
        planted_table(60, seed=5),
        "label",
        model_config=ModelConfig(d_token=4, d_model=16, num_layers=1, num_heads=2),
        train_config=TrainConfig(time_budget=None, max_epochs=1, threads=1),
        sets=SetOptions("g"),
    )
    at = upload_zip(open_page(new_app()), zip_run(run, include_data=True), "sets.zip")
    assert any("One prediction per group of **g**" in c.value for c in at.caption)
    at.button(key="o_open").click().run()
    wait_for_opening(at)
    assert not at.exception and not at.error
    assert isinstance(at.session_state["explanation"], SetExplanation)
    assert at.session_state["run"].sets == SetOptions("g")


def test_a_changed_role_survives_leaving_the_data_page():
    at = new_app()
    at.session_state["table"].roles = {"island": "ignored"}  # as the roles editor stores it
    at.switch_page("views/train.py").run()
    at.switch_page("views/data.py").run()
    schema = at.dataframe[1].value
    assert dict(zip(schema["column"], schema["role"], strict=True))["island"] == "ignored"
    assert at.session_state["table"].roles == {"island": "ignored"}
    assert "island" not in at.session_state["schema"][1].categorical_columns


@pytest.mark.slow
def test_a_difference_opens_on_a_test_cohort_against_the_rest_with_its_false_discovery_rate(
    trained,
):
    from mrta_dashboard import keys

    at = trained
    at.switch_page("views/explore.py").run()
    at.selectbox(key=keys.MAP).set_value("cat_num").run()
    at.selectbox(key=keys.ROWS).set_value("difference of two cohorts").run()
    assert not at.exception and not at.error
    first = at.selectbox(key=keys.COHORT_A).value
    assert first[-1] == "test", "the view opens on a cohort of the held-out rows"
    assert at.selectbox(key=keys.COHORT_B).value == "the rest of its rows"
    captions = [c.value for c in at.caption]
    assert any("B: the rest of the test rows, " in c for c in captions)
    assert any("Benjamini–Yekutieli" in c and "q = 0.05" in c for c in captions)
    at.number_input(key=keys.DIFFERENCE_Q).set_value(0.2).run()
    assert any("q = 0.2" in c.value for c in at.caption)
    # a cohort and one that may share its rows: shown without a test, and said so
    at.selectbox(key=keys.COHORT_B).set_value(("all",)).run()
    assert not at.exception
    assert any(c.value.startswith("No test") for c in at.caption)


@pytest.mark.slow
def test_a_crafted_zip_is_a_message_read_once_not_a_traceback(trained, monkeypatch):
    import io
    import zipfile

    from mrta.pipelines.archive import zip_run
    from mrta_dashboard.parts import runs

    run = trained.session_state["run"]
    data = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(zip_run(run, folder="r")), "r") as source,
        zipfile.ZipFile(data, "w") as crafted,
    ):
        for info in source.infolist():
            crafted.writestr(info.filename, source.read(info))
        crafted.writestr("r/weights.safetensors/inside", b"x")  # a file and a folder alike
    reads = []
    real = runs.open_zip
    monkeypatch.setattr(runs, "open_zip", lambda *a, **k: reads.append(1) or real(*a, **k))
    at = upload_zip(open_page(trained), data.getvalue(), "crafted.zip")
    assert not at.exception
    assert any("crafted.zip cannot be opened as a run" in e.value for e in at.error)
    at.run()  # a rerun shows the same message without reading the zip again
    assert any("crafted.zip cannot be opened as a run" in e.value for e in at.error)
    assert len(reads) == 1


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("penguins.csv", "penguins.csv"),
        ("![x](http://evil.example/x.png)", r"\!\[x\]\(http\://evil.example/x.png\)"),
        (":red[alarm] :material/home: $x^2$", r"\:red\[alarm\] \:material/home\: \$x\^2\$"),
        ("**bold** _it_ `code` <b>", r"\*\*bold\*\* \_it\_ \`code\` \<b\>"),
        ("- a list\n1. another", r"\- a list 1. another"),
        ("1. first", r"1\. first"),
    ],
)
def test_data_derived_text_is_shown_literally(text, shown):
    from mrta_dashboard.text import md

    assert md(text) == shown


def test_a_table_cannot_put_markdown_into_the_page():
    names = ["![x](http://evil.example/x.png)", ":red[t] $x$", "**b**"]
    rows = "\n".join(f"{i % 7},{'abc'[i % 3]},{'yn'[i % 2]}" for i in range(60))
    at = upload(new_app(), "[a](javascript:alert(1)).csv", f"{','.join(names)}\n{rows}\n".encode())
    assert not at.exception
    shown = [e.value for e in (*at.subheader, *at.caption, *at.info, *at.warning, *at.success)]
    text = " ".join(shown)
    assert r"\[a\]\(javascript\:alert\(1\)\).csv" in text
    assert "](" not in text.replace(r"\]\(", "") and "javascript:" not in text
    assert ":red[" not in text
