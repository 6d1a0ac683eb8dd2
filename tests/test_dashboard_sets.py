"""The dashboard's group mode (one prediction per group of rows) through Streamlit's AppTest:
the choice and the check of the groups on the Data page, training, the set browser on the
Explore page, the exports, and a grouping refused with the session's state kept."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from test_dashboard import new_app, plain, plotly_json, upload, wait_for_training, z_values
from test_sets import planted_table

from mrta.analysis.sets import SetExplanation
from mrta.data.samples import SAMPLE_TABLES
from mrta.data.sets import MAX_SET_SIZE, SetOptions

PER_GROUP, PER_ROW = "One prediction per group", "One prediction per row"
BIG = "G9999"  # one group of 130 rows, beyond the rows a set's map draws at once


def grouped_table() -> pd.DataFrame:
    """150 planted sets of 3–12 rows and one of 130 (label: a row of kind x above 0.5), with
    a day column to order a set's rows by."""
    frame = planted_table(150, seed=0)
    big = planted_table(40, seed=1).head(130).assign(g=BIG)
    big["label"] = int(((big["kind"] == "x") & (big["amount"] > 0.5)).any())
    frame = pd.concat([frame, big], ignore_index=True)
    frame.insert(1, "day", np.arange(len(frame)) % 400)
    return frame


def csv_of(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def choose_groups(at, name: str, content: bytes):
    """Upload a table, predict its label, one prediction per group."""
    upload(at, name, content)
    source = at.session_state["table"].source_id
    at.selectbox(key=f"target:{source}").set_value("label").run()
    at.radio(key=f"mode:{source}").set_value(PER_GROUP).run()
    assert not at.exception
    return source


def heatmap(at) -> dict:
    figures = [plotly_json(at, i) for i in range(len(at.get("plotly_chart")))]
    traces = [t for f in figures for t in f["data"] if t["type"] == "heatmap"]
    assert len(traces) == 1
    return next(f for f in figures if f["data"][0]["type"] == "heatmap")


@pytest.fixture(scope="module")
def grouped():
    """The grouped table, trained briefly in group mode (ordered by day), on the Explore page."""
    at = new_app()
    source = choose_groups(at, "sets.csv", csv_of(grouped_table()))
    at.selectbox(key=f"order_by:{source}").set_value("day").run()
    at.switch_page("views/train.py").run()
    at.number_input(key="layers:quick").set_value(1)
    at.number_input(key="budget:quick").set_value(5.0)
    at.button[0].click().run()
    wait_for_training(at)
    assert at.session_state["job"].error is None
    return at


@pytest.mark.slow
def test_the_set_sample_opens_in_group_mode_and_the_choice_survives_pages():
    at = new_app()
    sample = next(s for s in SAMPLE_TABLES if s.file == "synthetic_set.csv")
    options = at.selectbox(key="sample").options
    assert any("one prediction per portfolio_id" in option for option in options)
    at.selectbox(key="sample").set_value(sample).run()
    assert not at.exception and not at.error
    source = "sample:synthetic_set.csv"
    assert at.radio(key=f"mode:{source}").value == PER_GROUP
    assert at.selectbox(key=f"group_by:{source}").value == "portfolio_id"
    assert at.number_input(key=f"max_set_size:{source}").value == MAX_SET_SIZE
    assert plain(at.info[0].value).startswith("1,500 groups of 'portfolio_id'")
    assert "one prediction per group of **portfolio_id**" in plain(at.success[0].value)
    roles = at.dataframe[1].value.set_index("column")
    assert roles.loc["portfolio_id", "role"] == "ignored"
    assert roles.loc["portfolio_id", "why"].startswith("the group key")
    at.number_input(key=f"max_set_size:{source}").set_value(50).run()
    assert "269 groups have more than 50 rows: each keeps a random 50" in plain(at.info[0].value)
    at.switch_page("views/train.py").run()
    assert "per group of **portfolio_id**" in plain(at.caption[0].value)
    at.switch_page("views/data.py").run()
    assert at.radio(key=f"mode:{source}").value == PER_GROUP, "kept across pages"
    assert at.number_input(key=f"max_set_size:{source}").value == 50
    at.radio(key=f"mode:{source}").set_value(PER_ROW).run()
    assert "categorical tokens" in at.success[0].value
    assert at.session_state["table"].set_options() is None


@pytest.mark.slow
def test_group_mode_guesses_the_key_and_describes_the_sets():
    at = new_app()
    source = choose_groups(at, "sets.csv", csv_of(grouped_table()))
    assert at.selectbox(key=f"group_by:{source}").value == "g", "a repeating key is guessed"
    assert at.selectbox(key=f"order_by:{source}").value is None
    assert plain(at.info[0].value).startswith("151 groups of 'g', one example each: 3 to 130 rows")
    assert "every row is used" in plain(at.info[0].value)
    at.number_input(key=f"max_set_size:{source}").set_value(100).run()
    assert "1 group has more than 100 rows" in plain(at.info[0].value)
    assert at.session_state["table"].set_options() == SetOptions("g", None, 100)
    assert any("'g' is the group key" in c.value for c in at.caption)


def test_the_guessed_key_repeats_and_looks_like_one():
    from mrta.data.read import read_table
    from mrta.data.sets import guess_group_key

    assert guess_group_key(grouped_table(), None, "label") == "g"  # not day, a number
    penguins = read_table(SAMPLE_TABLES[0].path).frame
    assert guess_group_key(penguins, None, "species") is None, "no key: the user chooses"
    numbered = pd.DataFrame({"customer_id": [1, 1, 2, 2, 3, 3], "x": [1.5, 2, 3, 4, 5, 6], "y": 1})
    assert guess_group_key(numbered, None, "y") == "customer_id"
    assert guess_group_key(numbered.drop(columns="customer_id"), None, "y") is None


@pytest.mark.slow
def test_training_in_group_mode_compares_with_the_aggregate_baseline(grouped):
    at = grouped
    assert not at.exception and not at.error
    run = at.session_state["run"]
    assert run.sets == SetOptions("g", "day", MAX_SET_SIZE)
    assert isinstance(at.session_state["explanation"], SetExplanation)
    table = at.dataframe[0].value
    assert list(table.index) == [
        "attention model",
        "gradient boosting on per-group aggregates",
        "trivial",
    ]
    assert any("the test split holds" in c.value and "groups" in c.value for c in at.caption)
    titles = [plotly_json(at, i)["layout"]["title"]["text"] for i in range(3)]
    assert titles == ["Loss per epoch", "Confusion matrix (test split)", "ROC curve (test split)"]


@pytest.mark.slow
def test_explore_shows_the_summary_a_set_map_and_its_rows_ranked(grouped):
    at = grouped
    at.switch_page("views/explore.py").run()
    assert not at.exception and not at.error
    assert at.subheader[0].value == "Across the sets" and at.subheader[1].value == "One set"
    summary = plotly_json(at, 0)
    assert summary["layout"]["title"]["text"] == "Mean rollout of the rows, by kind"
    assert set(summary["layout"]["xaxis"]["ticktext"]) == {"w", "x", "y", "z"}
    explanation = at.session_state["explanation"]
    key = at.session_state["x_chosen_set"]
    size = int(explanation.sets.set_index("g").loc[key, "n_rows"])
    fig = heatmap(at)
    (trace,) = [t for t in fig["data"] if t["type"] == "heatmap"]
    weights = z_values(trace)
    assert weights.shape == (size, size)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
    frame = at.session_state["run"].frame
    days = sorted(frame.loc[frame["g"] == key, "day"])
    assert fig["layout"]["yaxis"]["ticktext"] == [str(d) for d in days], "labelled by day"
    assert "kind=" in trace["customdata"][0][1][2], "a row's values on hover"
    rows = at.dataframe[0].value
    assert len(rows) == size and list(rows.columns[:2]) == ["position", "rollout"]
    assert rows["rollout"].is_monotonic_decreasing, "the most attended row first"
    assert {"kind", "amount", "day"} <= set(rows.columns)
    bars = plotly_json(at, 2)
    assert bars["layout"]["title"]["text"] == f"The {size} most attended of {size} rows"


@pytest.mark.slow
def test_the_set_browser_filters_sets_and_switches_maps_heads_and_labels(grouped):
    at = grouped
    at.switch_page("views/explore.py").run()
    sets = at.session_state["explanation"].sets
    at.radio(key="x_s_filter").set_value("wrong predictions").run()
    assert not at.exception
    wrong = set(sets.loc[~sets["correct"], "g"])
    if wrong:
        picker = at.selectbox(key="x_set:wrong predictions")
        assert set(picker.options) == {f"{k} · {_text(sets, k)}" for k in wrong}
        assert "✗" in picker.options[0]
    else:  # a model that got every set right: no picker, and the page says why
        assert any("no wrong predictions" in info.value for info in at.info)
    at.radio(key="x_s_filter").set_value("every set").run()
    at.selectbox(key="x_s_map").set_value("num_cat").run()
    at.selectbox(key="x_s_head").set_value(1).run()
    at.selectbox(key="x_s_label").set_value("kind").run()
    at.selectbox(key="x_s_measure").set_value("layer 0 num_cat").run()
    assert not at.exception and not at.error
    fig = heatmap(at)
    assert fig["layout"]["title"]["text"].endswith("numerical → categorical, head 1")
    assert all(t[0] in "wxyz" for t in fig["layout"]["xaxis"]["ticktext"]), "labelled by kind"
    assert list(at.dataframe[0].value.columns[:3]) == ["position", "layer 0 num_cat", "rollout"]
    at.selectbox(key="x_s_measure").set_value("rollout").run()


def _text(sets: pd.DataFrame, key: str) -> str:
    from mrta_dashboard.parts.set_browser import set_text

    return set_text(sets.set_index("g").loc[key])


@pytest.mark.slow
def test_a_big_set_shows_the_map_of_its_most_attended_rows(grouped):
    at = grouped
    at.switch_page("views/explore.py").run()
    picker = at.selectbox(key="x_set:every set")
    picker.set_value(BIG).run()
    assert not at.exception and not at.error
    assert at.slider(key="x_s_rows").value == 80
    assert z_values(heatmap(at)["data"][0]).shape == (80, 80)
    assert any("This set has 130 rows" in c.value for c in at.caption)
    at.slider(key="x_s_rows").set_value(30).run()
    assert z_values(heatmap(at)["data"][0]).shape == (30, 30)
    assert len(at.dataframe[0].value) == 130, "the ranked table holds every row"


@pytest.mark.slow
def test_export_offers_the_set_files_and_the_chosen_sets_maps(grouped):
    at = grouped
    at.switch_page("views/explore.py").run()
    chosen = at.session_state["x_chosen_set"]
    at.switch_page("views/export.py").run()
    assert not at.exception and not at.error
    labels = [b.label for b in at.get("download_button")]
    for wanted in ("Sets (.csv)", "Rows and measures (.csv)", "Summary (.csv)", "run (.zip)"):
        assert any(wanted in label for label in labels), wanted
    assert at.selectbox(key="e_set").value == chosen, "the set shown on the Explore page"
    assert f"Maps of set {chosen} (.npz)" in labels
    from mrta_dashboard.views.export import _set_map_file

    run, explanation = at.session_state["run"], at.session_state["explanation"]
    data = _set_map_file(run, explanation, chosen, None, "set_maps.npz")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        size = int((run.frame["g"] == chosen).sum())
        assert arrays["layer0_num_num"].shape == (run.model_config.num_heads, size, size)
    tidy = pd.read_csv(io.BytesIO(_set_map_file(run, explanation, chosen, None, "set_maps.csv")))
    assert list(tidy.columns) == ["layer", "map", "head", "query", "key", "weight"]


@pytest.mark.slow
def test_a_target_that_varies_within_groups_is_refused_and_the_run_is_kept(grouped):
    run, explanation = grouped.session_state["run"], grouped.session_state["explanation"]
    at = new_app()
    at.session_state["run"], at.session_state["explanation"] = run, explanation
    broken = grouped_table()
    mixed = broken["g"].isin(["G0003", "G0007"])
    broken.loc[mixed, "label"] = np.arange(int(mixed.sum())) % 2  # both labels in each group
    source = choose_groups(at, "broken.csv", csv_of(broken))
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("'g' cannot group the rows into examples.")
    assert "must be the same on every row of a group" in message and "'G0003'" in message
    assert not at.success, "not ready to train"
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert at.error[0].value.startswith("Not ready to train: The target 'label' must be")
    assert not at.button, "no training from a refused grouping"
    at.switch_page("views/explore.py").run()
    assert not at.exception and at.session_state["run"] is run, "the run is kept"
    assert at.subheader[1].value == "One set"
    at.switch_page("views/data.py").run()
    assert at.radio(key=f"mode:{source}").value == PER_GROUP and at.error, "the choice is kept"
    at.radio(key=f"mode:{source}").set_value(PER_ROW).run()
    assert not at.error and "Ready to train" in at.success[0].value
