"""How fast the dashboard answers, measured through Streamlit's AppTest (no browser).

On the 10,000-row synthetic binary table: the time from pressing Train to a run with its
attention recorded (a 30 s training budget, then every cohort in one pass), and the time of a
full page rerun on the Explore page when switching layer, map, head and cohort (the yardstick:
well under a second). AppTest runs the page script as a browser would trigger it, minus the
network and the drawing in the browser.

Run: ``python -m benchmarks.dashboard_speed`` (about a minute); it writes
``benchmarks/results/dashboard_speed.json`` and prints a table.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from mrta.data.samples import row_tables

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "dashboard_speed.json"
TABLE = "synthetic_binary.csv"


def timed(at: AppTest, change) -> float:
    start = time.perf_counter()
    change(at).run()
    assert not at.exception, at.exception
    return time.perf_counter() - start


def main() -> None:
    at = AppTest.from_file(str(ROOT / "mrta_dashboard" / "app.py"), default_timeout=300)
    at.run()
    at.selectbox(key="sample").set_value(next(t for t in row_tables() if t.file == TABLE)).run()
    at.switch_page("views/train.py").run()
    start = time.perf_counter()
    at.button[0].click().run()
    while at.session_state["job"].running:
        time.sleep(0.2)
    train_and_record = time.perf_counter() - start
    at.run()
    job = at.session_state["job"]
    assert job.error is None, job.error
    run, explanation = at.session_state["run"], at.session_state["explanation"]

    at.switch_page("views/explore.py").run()
    cohorts = list(explanation.atlas.cohort_labels)
    changes = {
        "layer": [lambda a, i=i: a.selectbox(key="x_layer").set_value(i % 2) for i in range(1, 7)],
        "map": [
            lambda a, m=m: a.selectbox(key="x_map").set_value(m)
            for m in ("cat_num", "num_cat", "cat_cat", "num_num", "cat_num", "num_cat")
        ],
        "head": [
            lambda a, h=h: a.selectbox(key="x_head").set_value(h)
            for h in (0, 1, 2, 3, "mean of heads", "all heads")
        ],
    }
    seconds = {name: [timed(at, c) for c in steps] for name, steps in changes.items()}
    at.selectbox(key="x_rows").set_value("a cohort").run()
    seconds["cohort"] = [
        timed(at, lambda a, i=i: a.selectbox(key="x_cohort").set_value(i))
        for i in range(1, min(len(cohorts), 13), 2)
    ]
    result = {
        "benchmark": "dashboard_speed",
        "table": TABLE,
        "rows": len(run.frame),
        "cohorts": len(cohorts),
        "train_and_record_seconds": round(train_and_record, 2),
        "training_seconds": round(run.training.elapsed, 2),
        "rerun_seconds_median": {k: round(statistics.median(v), 3) for k, v in seconds.items()},
        "rerun_seconds_max": {k: round(max(v), 3) for k, v in seconds.items()},
    }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| {TABLE} ({result['rows']:,} rows, {result['cohorts']} cohorts) | seconds |")
    print("|---|---|")
    print(f"| press Train → run with attention recorded | {result['train_and_record_seconds']} |")
    for name, median in result["rerun_seconds_median"].items():
        worst = result["rerun_seconds_max"][name]
        print(f"| Explore: switch {name} (median, worst) | {median} ({worst}) |")


if __name__ == "__main__":
    main()
