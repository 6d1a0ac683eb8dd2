"""The HTML report of `mrta explain --report`, the one the dashboard downloads too: every
layer's maps, the metrics beside their baselines in one table, a confusion matrix figure, and
no raw JSON outside the page's scripts (the page parsed with html.parser)."""

import inspect
import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from test_cli import TINY_ARGS
from test_cli_output import run_cli
from test_train import tiny_frame

from mrta.report import run_report
from mrta.report.metric_figures import confusion_matrix_figure, divergence_chart
from mrta.runs.run import Run

TWO_LAYERS = [*TINY_ARGS, "--layers", "2"]  # the later flag wins


class Page(HTMLParser):
    """The parts of a report a test reads: text outside scripts, headings, tables, plots."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.outside: list[str] = []  # text outside <script> and <style>
        self.scripts: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.plots = 0
        self._in: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h1", "h2", "h3"):
            self.headings.append((tag, ""))
        if tag == "div" and "plotly-graph-div" in (dict(attrs).get("class") or ""):
            self.plots += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        while self._in and self._in.pop() != tag:
            pass

    def handle_data(self, data):
        where = self._in[-1] if self._in else ""
        if where == "script":
            self.scripts.append(data)
            return
        if where == "style":
            return
        self.outside.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if where in ("h1", "h2", "h3"):
            tag, text = self.headings[-1]
            self.headings[-1] = (tag, text + data)


def plots(page: Page) -> list[tuple[list, dict]]:
    """``(data, layout)`` of each ``Plotly.newPlot`` call of the page's scripts."""
    decoder, found = json.JSONDecoder(), []
    for script in page.scripts:
        for match in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*", script):
            data, end = decoder.raw_decode(script, match.end())
            layout, _ = decoder.raw_decode(script, script.index("{", end))
            found.append((data, layout))
    return found


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    """A two-layer tiny multiclass run, trained and explained with --report by the CLI."""
    folder = tmp_path_factory.mktemp("report")
    tiny_frame("multiclass", rows=160).to_csv(folder / "data.csv", index=False)
    code, _, err = run_cli(
        "train", str(folder / "data.csv"), "--target", "y", "--out", str(folder / "run"),
        *TWO_LAYERS,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(
        "explain", str(folder / "run"), str(folder / "data.csv"), "--out",
        str(folder / "explained"), "--report",
    )  # fmt: skip
    assert code == 0, err
    text = (folder / "explained" / "report.html").read_text(encoding="utf-8")
    return Run.load(folder / "run"), text, Page(text), folder


@pytest.mark.slow
def test_the_report_shows_every_layers_maps(explained):
    run, text, page, _ = explained
    assert run.model.to_dict()["config"]["num_layers"] == 2
    scripts = "".join(page.scripts)
    for layer in (0, 1):  # four maps a layer (numerical and categorical columns), each once
        assert len(re.findall(rf"Layer {layer}, ", scripts)) == 4, layer
    # 8 maps, the rollout, the confusion matrix and the divergence from the untrained model
    assert page.plots == 11
    assert text.count("plotly.js v") == 1 and not re.search(r"<script[^>]+src=", text)


@pytest.mark.slow
def test_no_raw_json_outside_the_scripts_and_each_title_once(explained):
    _, _, page, _ = explained
    outside = " ".join(page.outside)
    assert not re.search(r"[{\[]\s*\"|\"\s*:\s*[\[{\"\d]|\[\[|:\s*(null|true|false)\b", outside)
    assert "confusion_matrix" not in outside and "map_id" not in outside
    h1 = [text for tag, text in page.headings if tag == "h1"]
    assert h1 == ["MRTA Explorer: predicting y from data.csv"]
    h2 = [text for tag, text in page.headings if tag == "h2"]
    assert len(h2) == len(set(h2)) and {"Data", "Metrics", "Maps", "Checks", "Heads"} <= set(h2)
    titles = [layout["title"]["text"].split("<br>")[0] for _, layout in plots(page)]
    assert len(titles) == page.plots and len(set(titles)) == len(titles), "each figure titled"
    assert not any(title in outside for title in titles), "and its title is not repeated"


@pytest.mark.slow
def test_metrics_beside_their_baselines_in_one_table(explained):
    run, _, page, _ = explained
    metric_tables = [t for t in page.tables if t and t[0][:1] == ["metric"]]
    assert len(metric_tables) == 1, "one table of metrics, no per-baseline tables"
    header, *rows = metric_tables[0]
    assert header == [
        "metric",
        "model",
        "gradient boosting",
        "trivial",
        "control (shuffled labels)",
    ]
    by_name = {row[0]: row[1:] for row in rows}
    scores = run.metrics
    for key, label in (("accuracy", "accuracy"), ("roc_auc", "ROC AUC"), ("log_loss", "log loss")):
        assert by_name[label][:3] == [
            f"{scores[column][key]:.4g}" for column in ("model", "hgb", "trivial")
        ]
    assert by_name["ROC AUC"][3] == f"{run.control.value:.4g}"
    assert by_name["accuracy"][3] == "–", "the control's other metrics were not measured"


@pytest.mark.slow
def test_the_confusion_matrix_is_a_figure_of_the_models_counts(explained):
    run, _, page, _ = explained
    matrix = run.metrics["model"]["confusion_matrix"]
    titled = {layout["title"]["text"]: data for data, layout in plots(page)}
    heatmaps = titled["Confusion matrix of the model on the test split"]
    assert len(heatmaps) == 1 and heatmaps[0]["type"] == "heatmap"
    texts = [[cell.split("<br>")[0] for cell in row] for row in heatmaps[0]["text"]]
    assert texts == [[f"{n:,}" for n in row] for row in matrix["matrix"]]
    assert heatmaps[0]["y"] == list(range(len(matrix["labels"])))


def test_the_confusion_figure_names_classes_whole_and_shares_by_true_class():
    labels = ["a rather long class name that is not cut", "<b>"]
    fig = confusion_matrix_figure([[3, 1], [0, 0]], labels, title="Confusion").to_plotly_json()
    ticks = fig["layout"]["xaxis"]["ticktext"]
    assert ticks[0].replace("<br>", " ") == labels[0] and ticks[1] == "&lt;b&gt;"
    assert fig["data"][0]["text"][0] == ["3<br>(75%)", "1<br>(25%)"]
    assert fig["layout"]["xaxis"]["automargin"] and fig["layout"]["yaxis"]["automargin"]


def test_the_divergence_chart_is_scaled_to_its_values():
    rows = [
        {"layer": 0, "map_id": "num_num", "divergence": 0.002, "control_divergence": 0.001},
        {"layer": 1, "map_id": "cat_num", "divergence": 0.004, "control_divergence": None},
    ]
    fig = divergence_chart(rows, title="Divergence").to_plotly_json()["layout"]["yaxis"]
    assert fig["range"][1] == pytest.approx(1.3 * 0.004), "not the bound of 1"
    spread = [{**rows[0], "divergence": 1e-7}, rows[1]]
    log = divergence_chart(spread, title="Divergence").to_plotly_json()["layout"]["yaxis"]
    assert log["type"] == "log" and log["range"][0] < -7, "the smallest value shows too"


def test_the_dashboard_downloads_the_same_report():
    from mrta_dashboard.views import export

    assert export.report_html is run_report.report_html
    source = inspect.getsource(export.page)
    assert "report_html(run, explanation, table=source)" in source
    assert inspect.signature(run_report.report_html).parameters.keys() == {
        "run",
        "explanation",
        "table",
    }, "no title of its own: the title comes from the table and the target"


@pytest.mark.slow
def test_the_cli_report_is_report_html_of_the_run_on_its_table(explained):
    """`mrta explain --report` writes what report_html gives (the dashboard's function)."""
    from mrta.pipelines.explain import explain

    _, text, _, folder = explained
    run, frame = Run.load(folder / "run"), pd.read_csv(folder / "data.csv")
    assert run.check_table(frame).matches
    run.frame = frame  # as mrta explain does with the run's own table
    again = run_report.report_html(run, explain(run, frame), "data.csv")
    ids = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert Page(ids.sub("id", again)).outside == Page(ids.sub("id", text)).outside
