"""Column gates (Yamada et al. 2020's stochastic gates on tokens): the formula, the penalty,
gradients, that a closed gate empties its column, that training closes a noise column, and
saved runs with and without them."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import QUICK, TINY_MODEL, tiny_frame
from tiny_models import tiny_config, tiny_model

from mrta.cli import main
from mrta.config import ModelConfig, TrainConfig
from mrta.nn.gates import OPEN, SIGMA, SPEED, ColumnGates
from mrta.pipelines.race import race_refusal
from mrta.pipelines.train_run import train_run
from mrta.runs.gates import GateReport, gate_report
from mrta.runs.run import Run

FIXTURE = Path(__file__).parent / "fixtures" / "run_v1_row"
GATED = dataclasses.replace(TINY_MODEL, dropout=0.0, gate_penalty=0.01)


def gated(penalty: float, seed: int = 0):
    """A tiny binary model of numerical columns a, b and categorical c, gated at `penalty`."""
    config = dataclasses.replace(tiny_config(), gate_penalty=penalty)
    return tiny_model(["a", "b"], ["c"], task="binary", config=config, seed=seed)


def test_open_gates_pass_tokens_unchanged_in_evaluation_and_add_noise_in_training():
    gates = ColumnGates(3)
    tokens = torch.randn(5, 3, 4)  # (B, T, d)
    gates.eval()
    torch.testing.assert_close(gates(tokens), tokens)
    assert gates.values().tolist() == [1.0, 1.0, 1.0]
    gates.train()
    torch.manual_seed(0)
    noisy = gates(tokens)
    assert noisy.shape == (5, 3, 4)
    ratio = noisy / tokens  # (B, T, d): one gate per row and column, shared by its d values
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio))
    assert ((ratio >= 0) & (ratio <= 1)).all() and (ratio < 1).any()


def test_the_gate_is_the_reference_hard_sigmoid_of_mean_plus_noise():
    gates = ColumnGates(4)
    with torch.no_grad():
        gates.scaled_mean.copy_(torch.tensor([-1.0, -0.3, 0.2, 0.9]) / SPEED)
    assert gates.values().tolist() == pytest.approx([0.0, 0.2, 0.7, 1.0])
    gates.train()
    torch.manual_seed(1)
    tokens = torch.ones(2, 4, 3)
    out = gates(tokens)
    torch.manual_seed(1)
    noise = SIGMA * torch.randn(2, 4)
    expected = torch.clamp(gates.mean + noise + 0.5, 0, 1)  # (B, T)
    torch.testing.assert_close(out[..., 0], expected)


def test_the_penalty_counts_the_expected_open_gates():
    gates = ColumnGates(5)
    phi = 0.5 * (1 + math.erf((OPEN + 0.5) / SIGMA / math.sqrt(2)))
    assert gates.expected_open().item() == pytest.approx(5 * phi)
    with torch.no_grad():
        gates.scaled_mean.fill_(-0.5 / SPEED)  # the gates' centre at 0: half open
    assert gates.expected_open().item() == pytest.approx(2.5)


def test_the_penalty_pulls_every_gate_towards_closed_and_the_task_loss_reaches_the_gates():
    model, gated_model = gated(0.0), gated(1.0)
    assert model.gates is None and model.regularisation() is None
    assert model.column_gates() is None
    gated_model.regularisation().backward()
    assert (gated_model.gates.scaled_mean.grad > 0).all()  # descent lowers every mean
    gated_model.zero_grad()
    gated_model.train()
    torch.manual_seed(0)
    logits = gated_model(torch.randn(8, 2), torch.zeros(8, 2), torch.randint(0, 4, (8, 1)))
    logits.sum().backward()
    assert gated_model.gates.scaled_mean.grad.abs().sum() > 0


def test_the_gates_do_not_change_the_other_initial_weights():
    plain = gated(0.0, seed=3)
    gated_state = gated(0.01, seed=3).state_dict()
    assert set(gated_state) - set(plain.state_dict()) == {"gates.scaled_mean"}
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(gated_state[name], value)


def test_a_closed_gate_makes_the_prediction_blind_to_its_column():
    model = gated(1.0)
    with torch.no_grad():
        model.gates.scaled_mean[1] = -2.0 / SPEED  # column b closed
    model.eval()
    numerical = torch.randn(6, 2)
    codes = torch.randint(0, 4, (6, 1))
    changed = numerical.clone()
    changed[:, 1] = torch.randn(6) * 10
    base = model(numerical, torch.zeros(6, 2), codes)
    torch.testing.assert_close(model(changed, torch.zeros(6, 2), codes), base)
    changed[:, 0] += 1.0  # an open column still matters
    assert not torch.allclose(model(changed, torch.zeros(6, 2), codes), base)
    assert model.column_gates() == {"a": 1.0, "b": 0.0, "c": 1.0}


def noisy_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A target that depends on `signal` alone, beside a column of pure noise."""
    rng = np.random.default_rng(seed)
    signal, noise = rng.normal(size=rows), rng.normal(size=rows)
    y = np.where(2 * signal + 0.5 * rng.normal(size=rows) > 0, "yes", "no")
    return pd.DataFrame({"signal": signal, "noise": noise, "y": y})


def test_training_closes_a_noise_column_and_keeps_the_signal_open():
    run = train_run(
        noisy_frame(),
        "y",
        model_config=dataclasses.replace(GATED, gate_penalty=0.02),
        train_config=dataclasses.replace(QUICK, max_epochs=30, patience=30),
    )
    gates = run.model.column_gates()
    assert gates["signal"] == 1.0
    assert gates["noise"] < 0.5
    history = run.training.history
    assert all(h["train_loss"] is None or h["train_loss"] < 1.0 for h in history)


def test_a_saved_run_keeps_its_gates_and_an_old_run_loads_without(tmp_path):
    run = train_run(tiny_frame(), "y", model_config=GATED, train_config=QUICK)
    assert set(run.model.column_gates()) == {"x1", "x2", "color", "size"}
    run.save(tmp_path / "run")
    again = Run.load(tmp_path / "run")
    assert again.model_config.gate_penalty == 0.01
    assert again.model.column_gates() == run.model.column_gates()
    rows = run.rows("test")
    pd.testing.assert_frame_equal(again.predict_frame(rows), run.predict_frame(rows))
    old = Run.load(FIXTURE)
    assert old.model_config.gate_penalty == 0.0 and old.model.gates is None
    assert (
        ModelConfig.from_dict(
            {k: v for k, v in ModelConfig().to_dict().items() if k != "gate_penalty"}
        ).gate_penalty
        == 0.0
    )


@pytest.mark.parametrize("penalty", [-0.1, float("inf"), float("nan"), True])
def test_a_bad_penalty_is_refused_by_name(penalty):
    with pytest.raises(ValueError, match="gate_penalty must be a number of at least 0"):
        ModelConfig(gate_penalty=penalty)


def report(members, control=None, columns=("a", "b", "c")) -> GateReport:
    return GateReport(0.003, tuple(columns), tuple(map(tuple, members)), control)


def test_the_report_sorts_columns_into_closed_partly_open_and_open():
    one = report([[1.0, 0.0, 0.4]], control=(0.0, 0.0, 1.0))
    assert one.closed() == ["b"] and one.open() == ["a"] and one.partly() == {"c": 0.4}
    text = one.sentence()
    assert "a price of 0.003 per open column" in text
    assert "closed for b (1 of 3): the model reads nothing of these columns" in text
    assert "Partly open: c 0.40." in text
    assert "not that it is unrelated to the target" in text
    assert text.endswith("The label-shuffled control, at the same price, closed 2 of 3.")
    assert one.to_dict() == {
        "penalty": 0.003,
        "columns": ["a", "b", "c"],
        "members": [[1.0, 0.0, 0.4]],
        "control": [0.0, 0.0, 1.0],
        "closed": ["b"],
        "partly": {"c": 0.4},
    }


def test_with_seed_members_a_column_is_closed_only_where_every_member_closed_it():
    two = report([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    assert two.closed() == ["b"] and two.partly() == {"c": 0.5}
    text = two.sentence()
    assert "closed in every seed member for b (1 of 3)" in text
    assert "Partly open (mean over the members): c 0.50." in text
    assert "control" not in text
    assert "no column is closed." in report([[1.0, 1.0, 1.0]]).sentence()


def test_a_run_reports_its_gates_beside_its_controls_and_a_run_without_gates_reports_none():
    run = train_run(tiny_frame(), "y", model_config=GATED, train_config=QUICK, control=True)
    gates = gate_report(run)
    assert gates.columns == ("x1", "x2", "color", "size")
    assert gates.members == (tuple(run.model.column_gates().values()),)
    assert gates.control == tuple(run.control.model.column_gates().values())
    plain = train_run(
        tiny_frame(), "y", model_config=dataclasses.replace(GATED, gate_penalty=0.0),
        train_config=QUICK,
    )  # fmt: skip
    assert gate_report(plain) is None
    assert gate_report(Run.load(FIXTURE)) is None


@pytest.mark.slow
def test_mrta_train_prints_the_gates_and_explain_writes_them_to_summary_and_report(
    tmp_path, capsys
):
    data = tmp_path / "t.csv"
    tiny_frame("binary").to_csv(data, index=False)
    out = tmp_path / "run"
    args = ["train", str(data), "--target", "y", "--out", str(out), "--time-budget", "3"]
    assert main([*args, "--d-model", "16", "--num-heads", "2", "--gate-penalty", "0.01"]) == 0
    printed = capsys.readouterr()
    if race_refusal(1, False, TrainConfig()) is None:  # a machine that races by default
        assert "no race: --gate-penalty set on the command line" in printed.err
    assert "Column gates (a price of 0.01 per open column in the training loss)" in printed.out
    run = Run.load(out)
    assert run.model_config.gate_penalty == 0.01 and run.race is None
    assert "The label-shuffled control, at the same price, closed" in printed.out
    explained = tmp_path / "explained"
    assert main(["explain", str(out), str(data), "--out", str(explained), "--report"]) == 0
    summary = json.loads((explained / "summary.json").read_text())
    assert summary["gates"] == json.loads(json.dumps(gate_report(run).to_dict()))
    assert summary["gates"]["control"] is not None
    report = (explained / "report.html").read_text(encoding="utf-8")
    assert "column gates" in report
