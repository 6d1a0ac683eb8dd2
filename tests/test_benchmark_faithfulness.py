"""benchmarks/faithfulness.py without training: the generated interaction table, and the README
table and the "done when" verdicts from hand-made records."""

from benchmarks import faithfulness as bench
from mrta.analysis.importance import METHODS


def test_the_interaction_table_is_a_pure_interaction():
    frame = bench.interaction_table(2000)
    assert frame.shape == (2000, 9) and set(frame["y"]) == {"yes", "no"}
    assert 0.05 < frame["noise_num_3"].isna().mean() < 0.15
    assert [frame[f"noise_cat_{i}"].nunique() for i in (1, 2, 3)] == [3, 4, 5]
    yes = frame["y"] == "yes"
    up = frame["flip"] == "up"
    assert abs(yes.mean() - 0.5) < 0.05 and abs(yes[up].mean() - yes[~up].mean()) < 0.05
    rule = (frame["x"] > 0) == up
    assert (rule == yes).mean() > 0.85
    assert bench.interaction_table(50).equals(bench.interaction_table(50))


def record(top: bool, beats: bool) -> dict:
    method = {
        "ranks": {"x": 1, "flip": 2 if top else 4},
        "top_k": top,
        "area": 0.1,
        "low": 0.05 if beats else -0.01,
        "high": 0.2,
        "beats_random": beats,
    }
    return {
        "metric": 0.9,
        "random": {"low": -0.1, "high": 0.1},
        "methods": {m: dict(method) for m in METHODS},
    }


def test_the_table_and_the_verdicts():
    results = {
        "interaction": {
            "real": [record(True, True)] * 3,
            "shuffled": [record(False, True), record(False, False), record(False, False)],
        }
    }
    text = bench.markdown(results, {"interaction": ("x", "flip")})
    assert (
        "| `interaction` | real | 0.900 (0.900 to 0.900) | permutation | 1, 2 / 1, 2 / 1, 2 "
        "| 3 of 3 |" in text
    )
    assert all(ok for _, ok, _ in bench.criteria(results))
    results["interaction"]["shuffled"][1] = record(False, True)
    results["interaction"]["real"][0] = record(False, False)
    assert [ok for _, ok, _ in bench.criteria(results)] == [False, False, False]


def test_the_readme_quotes_the_committed_results():
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "benchmarks/results/faithfulness.json").read_text())
    readme = (root / "README.md").read_text()
    block = re.search(
        r"<!-- faithfulness:start -->\n(.*?)\n<!-- faithfulness:end -->", readme, re.S
    )
    assert block, "README.md lacks the faithfulness markers"
    planted = {name: tuple(columns) for name, columns in result["planted"].items()}
    assert block.group(1) == bench.markdown(result["tables"], planted).strip()
