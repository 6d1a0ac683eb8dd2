"""Distributed training and explanation: torchrun with 2 CPU workers (gloo) on a small table.

The slow tests start real ``torchrun`` launches (``mrta train/explain --nproc 2``); the fast ones
check the pieces: argument passing, row shards, and sharded recording summed over workers
(threads standing in for processes).
"""

import contextlib
import copy
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from test_train import tiny_frame

from mrta import cli
from mrta.analysis.cohorts import CohortSpec
from mrta.analysis.collect import Shard, collect_attention
from mrta.analysis.labels import token_frame
from mrta.config import ModelConfig
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import infer_schema
from mrta.nn.model import build_model
from mrta.pipelines import launch
from mrta.report.exports import load_atlas
from mrta.runs.run import Run
from mrta.training import world

ROWS = 600
# A fixed number of epochs, one thread per worker: both runs take the same planned steps.
TRAIN = [
    "--target",
    "y",
    "--time-budget",
    "0",
    "--epochs",
    "15",
    "--layers",
    "1",
    "--d-model",
    "16",
    "--num-heads",
    "2",
    "--threads",
    "1",
    "--save-data",
]


def roc_auc(run: Run) -> float:
    """The run's test ROC AUC, recomputed from its predictions."""
    rows = run.rows("test")
    probabilities = run.predict_frame(rows)["yes"].to_numpy()
    return float(roc_auc_score(rows["y"] == "yes", probabilities))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "tiny.csv"
    tiny_frame(rows=ROWS).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(table, tmp_path_factory):
    """The same settings trained in one process and on two workers."""
    folder = tmp_path_factory.mktemp("runs")
    single, spread = folder / "single", folder / "spread"
    assert cli.main(["train", str(table), "--out", str(single), *TRAIN]) == 0
    start = time.perf_counter()
    assert cli.main(["train", str(table), "--out", str(spread), "--nproc", "2", *TRAIN]) == 0
    print(f"2 workers trained in {time.perf_counter() - start:.1f} s (launch included)")
    return single, spread


# -- the real thing ----------------------------------------------------------------------------
@pytest.mark.slow
def test_two_workers_train_a_run_that_loads_predicts_and_scores_like_one_process(
    runs, table, tmp_path
):
    single, spread = (Run.load(path) for path in runs)
    assert spread.training.world_size == 2 and spread.training.backend == "gloo"
    assert single.training.world_size == 1 and single.training.backend is None
    assert spread.training.stop_reason == "max_epochs" and spread.training.epochs == 15
    # the same split and preprocessor (fitted on rank 0 only), the same planned steps
    assert spread.splits.to_dict() == single.splits.to_dict()
    assert spread.preprocessor.to_dict() == single.preprocessor.to_dict()
    assert spread.training.steps == single.training.steps
    auc_single, auc_spread = roc_auc(single), roc_auc(spread)
    print(f"test ROC AUC: one process {auc_single:.4f}, two workers {auc_spread:.4f}")
    # Two workers draw other batches, so their model is another draw, not the same weights: on
    # 90 test rows two draws' ROC AUCs differ by up to about 0.03 (CI saw 0.948 against 0.977).
    assert auc_single == pytest.approx(single.metrics["model"]["roc_auc"])
    assert abs(auc_spread - auc_single) < 0.06
    assert min(auc_single, auc_spread) > 0.9
    assert auc_spread == pytest.approx(spread.metrics["model"]["roc_auc"])
    out = tmp_path / "predictions.csv"
    assert cli.main(["predict", str(runs[1]), str(table), "--out", str(out)]) == 0
    predictions = pd.read_csv(out)
    assert len(predictions) == ROWS and set(predictions["prediction"]) <= {"yes", "no"}
    # the control trained on the workers too, step for step, and was scored by rank 0
    assert spread.control.training.world_size == 2
    assert spread.control.steps == spread.training.steps == single.control.steps
    assert spread.control.value < spread.metrics["model"]["roc_auc"]


@pytest.mark.slow
def test_two_workers_explain_exactly_as_one_process(runs, table, tmp_path):
    run_dir = runs[1]
    copy_dir = tmp_path / "copy"
    shutil.copytree(run_dir, copy_dir)  # no cached analysis in it yet
    shutil.rmtree(copy_dir / "analysis", ignore_errors=True)
    args = [str(table), "--cohort", "every"]
    assert cli.main(["explain", str(run_dir), *args, "--out", str(tmp_path / "one")]) == 0
    start = time.perf_counter()
    assert (
        cli.main(["explain", str(copy_dir), *args, "--out", str(tmp_path / "two"), "--nproc", "2"])
        == 0
    )
    print(f"2 workers explained in {time.perf_counter() - start:.1f} s (launch included)")
    for name in ("atlas", "untrained"):
        one = load_atlas(run_dir / "analysis" / name)
        two = load_atlas(copy_dir / "analysis" / name)
        assert_same_atlas(one, two)
    exported = [np.load(tmp_path / name / "maps.npz") for name in ("one", "two")]
    assert sorted(exported[0].files) == sorted(exported[1].files)
    for name in exported[0].files:
        one, two = exported[0][name], exported[1][name]
        if one.dtype.kind == "f":
            np.testing.assert_allclose(one, two, rtol=0, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(one, two, err_msg=name)
    assert (tmp_path / "two" / "maps.csv").read_text().count("\n") == (
        tmp_path / "one" / "maps.csv"
    ).read_text().count("\n")


@pytest.mark.slow
def test_a_failing_worker_fails_the_run_with_its_message(table, tmp_path):
    # failing_worker.py makes worker 1 raise at its second step, through its callback
    script = Path(__file__).with_name("failing_worker.py")
    command = [*launch.torchrun_command([], 2)[:-2], str(script), str(table), str(tmp_path / "r")]
    env = {**os.environ, world.TIMEOUT_ENV: "60"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    # the failing worker's own message, then the other's, then one line naming the worker
    # instead of torchrun's traceback and failure table
    assert "worker 1 of 2: injected failure at step 2" in done.stderr
    assert "worker 0 of 2 lost contact with another worker" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "mrta: error: worker 1 failed (exit code 1): worker 1 of 2: injected failure at step 2"
    )
    assert "Root Cause" not in done.stderr and "ChildFailedError" not in done.stderr
    assert not (tmp_path / "r").exists()  # rank 0 never saved


def test_the_launcher_returns_torchrun_s_exit_code_and_says_where_the_error_is(monkeypatch, capsys):
    seen = {}

    def fake_run(command, env, check):
        seen.update(command=command, env=env)
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert cli.main(["train", "t.csv", "--target", "y", "--out", "r", "--nproc", "2"]) == 3
    assert "failing worker's message is above" in capsys.readouterr().err
    assert seen["command"][-7:] == ["mrta", "train", "t.csv", "--target", "y", "--out", "r"]


# -- the pieces --------------------------------------------------------------------------------
def test_the_workers_get_the_command_line_without_nproc():
    argv = ["train", "t.csv", "--nproc", "4", "--target", "y", "--npr=2", "--seed", "1"]
    assert launch.worker_argv(argv) == ["train", "t.csv", "--target", "y", "--seed", "1"]
    command = launch.torchrun_command(argv, 4)
    assert command[1:3] == ["-m", "mrta.pipelines.launch"]  # torchrun, with a one-line error
    assert command[command.index("--nproc-per-node") + 1] == "4"
    assert command[-7:] == ["mrta", "train", "t.csv", "--target", "y", "--seed", "1"]


def test_launching_needs_a_positive_count_and_never_happens_inside_a_worker(monkeypatch):
    assert not launch.launches(1) and launch.launches(2)
    with pytest.raises(ValueError, match="--nproc"):
        launch.launches(0)
    values = ("1", "2", "1", "localhost", "29500")
    for name, value in zip(world.WORKER_ENV, values, strict=True):
        monkeypatch.setenv(name, value)
    assert world.in_worker() and not world.is_leader()
    assert not launch.launches(2)


@pytest.mark.parametrize("fails", [False, True])
def test_workers_leave_the_group_together_unless_the_block_failed(monkeypatch, fails):
    """A worker done early waits at a barrier before tearing the group down (a worker that
    left while the others worked on was aborted by gloo); after an error it leaves at once."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for name, value in zip(world.WORKER_ENV, ("0", "1", "0", "127.0.0.1", str(port)), strict=True):
        monkeypatch.setenv(name, value)
    calls = []
    barrier = torch.distributed.barrier
    monkeypatch.setattr(torch.distributed, "barrier", lambda: calls.append("barrier") or barrier())
    expected = pytest.raises(RuntimeError) if fails else contextlib.nullcontext()
    with expected, world.process_group("cpu") as joined:
        assert joined.size == 1 and joined.leader
        if fails:
            raise RuntimeError("a failing block")
    assert calls == ([] if fails else ["barrier"])
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("n_rows, world", [(10, 3), (2, 3), (1000, 2), (7, 7)])
def test_shards_take_every_row_exactly_once(n_rows, world):
    blocks = [Shard(rank, world).rows(n_rows) for rank in range(world)]
    taken = [row for block in blocks for row in range(n_rows)[block]]
    assert taken == list(range(n_rows))
    sizes = [block.stop - block.start for block in blocks]
    assert max(sizes) - min(sizes) <= 1


class ThreadWorld:
    """``torch.distributed.all_reduce`` (SUM) among threads, each one a worker."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size)
        self.slots: dict[int, torch.Tensor] = {}
        self.local = threading.local()

    def all_reduce(self, tensor, op=None, group=None):
        self.slots[self.local.rank] = tensor.clone()
        self.barrier.wait()
        total = sum(self.slots[rank] for rank in range(self.size))  # same order everywhere
        self.barrier.wait()
        tensor.copy_(total)

    def run(self, work):
        results, errors = [None] * self.size, []

        def worker(rank):
            self.local.rank = rank
            try:
                results[rank] = work(rank)
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)
                self.barrier.abort()

        threads = [threading.Thread(target=worker, args=(r,)) for r in range(self.size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


# (2, 3): one worker has no rows, and every cohort but "all rows" holds one row. A standard
# deviation of ~0 is only known to ~1e-5 (sqrt of float32 rounding in the recorder's per-batch
# sums, one process or several), so there the standard deviations are compared to 1e-4.
@pytest.mark.parametrize("n_rows, world, std_atol", [(50, 2, 1e-6), (2, 3, 1e-4)])
def test_sharded_recording_summed_over_workers_equals_one_pass(
    monkeypatch, n_rows, world, std_atol
):
    frame = tiny_frame(rows=n_rows + 100, seed=1)
    schema = infer_schema(frame, "y")
    preprocessor = Preprocessor.fit(frame.iloc[:100], schema)
    rows = frame.iloc[100:]
    encoded = preprocessor.transform(rows)
    tokens = token_frame(schema, rows)
    spec = CohortSpec.for_frame(tokens, class_labels=schema.class_labels)
    model = build_model(preprocessor.model_spec(ModelConfig(d_token=8, d_model=16, num_heads=2)), 0)
    one = collect_attention(model, encoded, tokens, spec, batch_size=16)
    fake = ThreadWorld(world)
    monkeypatch.setattr(torch.distributed, "all_reduce", fake.all_reduce)
    models = [copy.deepcopy(model) for _ in range(world)]  # each worker hooks its own copy
    atlases = fake.run(
        lambda rank: collect_attention(
            models[rank], encoded, tokens, spec, batch_size=16, shard=Shard(rank, world)
        )
    )
    for atlas in atlases:
        assert_same_atlas(one, atlas, std_atol=std_atol)


def assert_same_atlas(one, two, atol=1e-6, std_atol=1e-6):
    assert one.cohorts == two.cohorts and one.cohort_labels == two.cohort_labels
    assert one.token_names == two.token_names and one.layer_names == two.layer_names
    np.testing.assert_array_equal(one.counts, two.counts)
    assert one.map_keys == two.map_keys
    for key in one.map_keys:
        for field, tolerance in (("means", atol), ("stds", std_atol), ("entropy", atol)):
            np.testing.assert_allclose(
                getattr(one, field)[key], getattr(two, field)[key], rtol=0, atol=tolerance
            )
    np.testing.assert_allclose(one.rollout_mean, two.rollout_mean, rtol=0, atol=atol)
    np.testing.assert_allclose(one.rollout_std, two.rollout_std, rtol=0, atol=std_atol)
