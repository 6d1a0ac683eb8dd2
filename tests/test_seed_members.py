"""Seed members (``--seeds N``): the ensemble's mean, one run of N members saved and loaded
back, old runs still loading, and the refusals."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_runs import _rehash
from test_target_transform import skewed_frame
from test_train import QUICK, TINY_MODEL, tiny_frame
from tiny_models import random_inputs, tiny_model

from mrta.cli import main
from mrta.config import TrainConfig
from mrta.data.preprocessing import PreprocessingOptions
from mrta.data.sets import SetOptions
from mrta.errors import RunError, WorkerError
from mrta.nn.ensemble import SeedEnsemble
from mrta.pipelines.train_run import train_run
from mrta.runs.manifest import MANIFEST, MAX_SEEDS, MEMBERS_FILE
from mrta.runs.run import Run
from mrta.training.evaluate import metrics
from mrta.training.parallel import fit_in_processes, in_processes


@pytest.mark.parametrize("task, n_classes", [("binary", 2), ("multiclass", 3), ("regression", 1)])
def test_the_ensemble_predicts_the_mean_of_its_members(task, n_classes):
    members = [
        tiny_model(["a", "b"], ["c"], task=task, n_classes=n_classes, seed=seed)
        for seed in (0, 1, 2)
    ]
    inputs = random_inputs(16, 2, 1)
    with torch.no_grad():
        outputs = torch.stack([m.eval()(*inputs) for m in members])  # (M, B, O)
        combined = SeedEnsemble(members, task).eval()(*inputs)
    assert combined.shape == outputs.shape[1:]
    if task == "binary":
        expected = torch.sigmoid(outputs).mean(dim=0)
        torch.testing.assert_close(torch.sigmoid(combined), expected)
    elif task == "multiclass":
        expected = torch.softmax(outputs, dim=-1).mean(dim=0)
        torch.testing.assert_close(torch.softmax(combined, dim=-1), expected)
    else:
        torch.testing.assert_close(combined, outputs.mean(dim=0))


def test_an_ensemble_needs_members():
    with pytest.raises(ValueError, match="members must hold at least one model"):
        SeedEnsemble([], "binary")


@pytest.fixture(scope="module")
def ensemble() -> Run:
    return train_run(
        tiny_frame("multiclass"),
        "y",
        model_config=TINY_MODEL,
        train_config=QUICK,
        seeds=3,
        parallel=False,  # one after another: quicker for a tiny model; at once is tested below
    )


@pytest.mark.slow
def test_members_differ_by_seed_and_the_run_scores_their_mean(ensemble):
    assert ensemble.seeds == 3
    assert [m.init_seed for m in ensemble.members] == [0, 1, 2]
    assert ensemble.members[0].model is ensemble.model
    first, second = (m.model.state_dict() for m in ensemble.members[:2])
    assert any(not torch.equal(first[k], second[k]) for k in first)
    test = ensemble.rows("test")
    probabilities = np.mean(
        [ensemble.member(k).predict_frame(test).iloc[:, :3].to_numpy() for k in range(3)], axis=0
    )
    np.testing.assert_allclose(
        ensemble.predict_frame(test).iloc[:, :3].to_numpy(), probabilities, rtol=1e-5, atol=1e-6
    )
    targets = ensemble.schema.encode_target(test)
    expected = metrics(ensemble.schema.task, targets, probabilities, ensemble.class_labels)
    assert ensemble.metrics["model"]["log_loss"] == pytest.approx(expected["log_loss"], rel=1e-4)
    assert ensemble.metrics["ensemble"]["members"] == 3
    for k, member in enumerate(ensemble.members):
        alone = ensemble.member(k).predict_frame(test).iloc[:, :3].to_numpy()
        scored = metrics(ensemble.schema.task, targets, alone, ensemble.class_labels)
        assert member.metrics["model"]["log_loss"] == pytest.approx(scored["log_loss"], rel=1e-4)


@pytest.mark.slow
def test_a_member_is_a_run_of_its_own(ensemble):
    view = ensemble.member(2)
    assert view is ensemble.member(2) and view.seeds == 1 and view.init_seed == 2
    assert view.model is ensemble.members[2].model and view.frame is ensemble.frame
    assert view.metrics == ensemble.members[2].metrics
    assert view.train_config.seed == 2
    untrained = view.untrained_model().state_dict()  # the member's own initial weights
    other = ensemble.untrained_model().state_dict()
    assert any(not torch.equal(untrained[k], other[k]) for k in untrained)
    with pytest.raises(ValueError, match="member must be between 0 and 2, got 3"):
        ensemble.member(3)


@pytest.mark.slow
def test_an_ensemble_round_trips_and_a_single_run_keeps_format_2(ensemble, tmp_path):
    saved = ensemble.save(tmp_path / "ens", include_data=True)
    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["format_version"] == 3
    assert {"members.json", "member-1.safetensors", "member-2.safetensors"} <= set(
        manifest["files"]
    )
    loaded = Run.load(saved)
    assert loaded.seeds == 3 and [m.init_seed for m in loaded.members] == [0, 1, 2]
    frame = tiny_frame("multiclass", rows=40, seed=3)
    pd.testing.assert_frame_equal(loaded.predict_frame(frame), ensemble.predict_frame(frame))
    for ours, theirs in zip(ensemble.members, loaded.members, strict=True):
        for (name, a), b in zip(
            ours.model.state_dict().items(), theirs.model.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), name
        assert theirs.metrics == json.loads(json.dumps(ours.metrics))
        assert theirs.training.steps == ours.training.steps
    single = train_run(tiny_frame("binary"), "y", model_config=TINY_MODEL, train_config=QUICK)
    one = single.save(tmp_path / "one")
    assert json.loads((one / MANIFEST).read_text())["format_version"] == 2
    assert MEMBERS_FILE not in json.loads((one / MANIFEST).read_text())["files"]
    assert Run.load(one).seeds == 1


@pytest.mark.slow
def test_a_member_without_its_weights_is_refused(ensemble, tmp_path):
    saved = ensemble.save(tmp_path / "ens")
    manifest = json.loads((saved / MANIFEST).read_text())
    del manifest["files"]["member-2.safetensors"]
    (saved / "member-2.safetensors").unlink()
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RunError, match=r"lacks the weights of its seed member 2"):
        Run.load(saved)
    facts = json.loads((saved / MEMBERS_FILE).read_text())
    facts["members"][0]["seed"] = 7
    data = json.dumps(facts).encode()
    (saved / MEMBERS_FILE).write_bytes(data)
    _rehash(saved, MEMBERS_FILE, data)
    with pytest.raises(RunError, match="another seed for member 0"):
        Run.load(saved)


@pytest.mark.slow
def test_a_log_target_ensemble_smears_the_mean_of_its_members_logs():
    options = PreprocessingOptions(target_transform="log")
    run = train_run(skewed_frame(), "price", model_config=TINY_MODEL, train_config=QUICK,
                    preprocessing_options=options, seeds=2, parallel=False)  # fmt: skip
    test = run.rows("test")
    predicted = run.predict_frame(test)["prediction"].to_numpy()
    scored = metrics(run.schema.task, test["price"].to_numpy(), predicted, ())
    assert run.metrics["model"]["rmse"] == pytest.approx(scored["rmse"], rel=1e-6)
    assert (predicted > 0).all()


@pytest.mark.parametrize("seeds", [0, MAX_SEEDS + 1, 2.0, True])
def test_a_number_of_seeds_out_of_range_is_refused(seeds):
    with pytest.raises(ValueError, match=f"seeds must be a whole number from 1 to {MAX_SEEDS}"):
        train_run(tiny_frame("binary"), "y", seeds=seeds)


def test_a_run_on_sets_refuses_seeds():
    frame = tiny_frame("binary")
    frame["group"] = np.arange(len(frame)) // 3
    with pytest.raises(ValueError, match="a run on sets trains one model: drop --seeds"):
        train_run(frame, "y", sets=SetOptions("group"), seeds=2)


def test_the_cli_refuses_seeds_with_nproc_or_a_streamed_table(tmp_path, capsys):
    data = tmp_path / "t.csv"
    tiny_frame("binary").to_csv(data, index=False)
    common = ["train", str(data), "--target", "y", "--seeds", "2"]
    assert main([*common, "--out", str(tmp_path / "a"), "--nproc", "2"]) != 0
    assert "--seeds trains its members on this machine" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "b"), "--chunk-rows", "50"]) != 0
    assert "--seeds needs the table in memory" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def train_two_members(folder) -> tuple[int, str, str]:
    """``mrta train --seeds 2`` of a tiny binary table into ``folder/run`` (its CSV
    ``folder/t.csv``): the exit code and the paths of the table and the run."""
    data, out = folder / "t.csv", folder / "run"
    tiny_frame("binary").to_csv(data, index=False)
    code = main(["train", str(data), "--target", "y", "--out", str(out), "--seeds", "2",
                 "--time-budget", "1", "--d-model", "8", "--num-heads", "2", "--layers", "1",
                 "--no-control"])  # fmt: skip
    return code, str(data), str(out)


@pytest.mark.slow
def test_the_cli_trains_and_reports_every_member(tmp_path, capsys):
    code, _, out = train_two_members(tmp_path)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "model (mean of 2 seeds)" in captured.out
    assert "each member alone, on the same rows" in captured.out
    assert "member 1 (seed 1):" in captured.err
    assert Run.load(out).seeds == 2


# -- members at once, a process each ------------------------------------------------------------
@pytest.mark.slow
def test_members_trained_at_once_are_those_trained_one_after_another():
    frame = tiny_frame("binary")
    at_once, in_turn = (
        train_run(frame, "y", model_config=TINY_MODEL, train_config=QUICK, seeds=2, parallel=way)
        for way in (True, False)
    )
    for ours, theirs in zip(at_once.members, in_turn.members, strict=True):
        assert ours.init_seed == theirs.init_seed and ours.training.threads == 1
        assert ours.training.steps == theirs.training.steps
        for (name, a), b in zip(
            ours.model.state_dict().items(), theirs.model.state_dict().values(), strict=True
        ):
            torch.testing.assert_close(a, b, msg=name)
    assert at_once.metrics["model"]["log_loss"] == pytest.approx(
        in_turn.metrics["model"]["log_loss"]
    )


def test_members_train_at_once_on_a_cpu_of_two_cores_or_more(monkeypatch):
    import mrta.training.parallel as parallel

    monkeypatch.setattr(parallel, "default_threads", lambda: 2)
    assert in_processes(3, TrainConfig(device="cpu"))
    assert not in_processes(1, TrainConfig(device="cpu"))
    assert not in_processes(3, TrainConfig(device="cuda"))
    monkeypatch.setattr(parallel, "default_threads", lambda: 1)
    assert not in_processes(3, TrainConfig(device="cpu"))


@pytest.mark.slow
def test_a_member_whose_process_fails_is_named():
    frame = tiny_frame("binary")
    run = train_run(frame, "y", model_config=TINY_MODEL, train_config=QUICK)
    train, validation = run.examples("train"), run.examples("validation")
    broken = {**run.model.to_dict(), "config": {"d_model": "wide"}}
    with pytest.raises(WorkerError, match="the process training seed member 0 failed"):
        fit_in_processes([(broken, QUICK)], type(run.model), train, validation,
                         target_mean=None, target_std=None)  # fmt: skip


@pytest.mark.slow
def test_a_cancel_stops_every_member_at_once():
    run = train_run(tiny_frame("binary"), "y", model_config=TINY_MODEL, train_config=QUICK,
                    seeds=3, parallel=True, cancel=lambda: True)  # fmt: skip
    assert run.seeds == 1 and run.training.stop_reason == "cancelled"
