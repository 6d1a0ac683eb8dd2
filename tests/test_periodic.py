"""Periodic embeddings of numerical columns (PLR): the paper's formula, its initialisation, the
missing-value indicator in the same token, training through them, and saved runs with them."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.config import ModelConfig
from mrta.errors import RunError
from mrta.nn.model import FeatureTokenizer, TabularAttentionModel
from mrta.nn.periodic import PeriodicEmbeddings
from mrta.pipelines.train_run import train_run
from mrta.runs.manifest import file_digest
from mrta.runs.run import Run

PLR = dataclasses.replace(TINY_MODEL, numerical_embedding="plr", plr_frequencies=6)
FIXTURE = Path(__file__).parent / "fixtures" / "run_v1_row"


def test_the_embedding_is_relu_of_a_per_column_linear_layer_of_cos_and_sin():
    torch.manual_seed(0)
    plr = PeriodicEmbeddings(n_features=3, d_embedding=5, n_frequencies=4, sigma=0.5)
    x = torch.randn(7, 3)
    out = plr(x)
    assert out.shape == (7, 3, 5) and (out >= 0).all()
    for j in range(3):
        angles = 2 * math.pi * plr.frequencies[j] * x[:, j : j + 1]  # (7, 4)
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (7, 8)
        expected = torch.relu(features @ plr.weight[j] + plr.bias[j])
        torch.testing.assert_close(out[:, j], expected)


def test_the_frequencies_start_from_a_truncated_normal_of_scale_sigma():
    torch.manual_seed(0)
    plr = PeriodicEmbeddings(n_features=50, d_embedding=4, n_frequencies=200, sigma=0.3)
    frequencies = plr.frequencies.detach()
    assert frequencies.abs().max() <= 0.9
    assert abs(frequencies.std().item() - 0.3) < 0.02  # truncation at 3 sigma barely narrows it
    assert abs(frequencies.mean().item()) < 0.01


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("inf"), float("nan")])
def test_a_bad_sigma_is_refused_by_name(sigma):
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        PeriodicEmbeddings(2, 4, 3, sigma)
    with pytest.raises(ValueError, match="plr_sigma must be a positive number"):
        ModelConfig(plr_sigma=sigma)


def test_the_config_refuses_an_unknown_embedding_and_old_configs_read_as_linear():
    with pytest.raises(ValueError, match=r"numerical_embedding must be one of \['linear', 'plr'\]"):
        ModelConfig(numerical_embedding="quantile")
    with pytest.raises(ValueError, match="plr_frequencies"):
        ModelConfig(plr_frequencies=0)
    new = ("numerical_embedding", "plr_frequencies", "plr_sigma")
    old = {k: v for k, v in ModelConfig().to_dict().items() if k not in new}
    assert ModelConfig.from_dict(old).numerical_embedding == "linear"
    assert Run.load(FIXTURE).model_config.numerical_embedding == "linear"


@pytest.mark.parametrize("embedding", ["linear", "plr"])
def test_a_missing_value_adds_its_columns_missing_vector_to_the_same_token(embedding):
    torch.manual_seed(0)
    tokenizer = FeatureTokenizer(3, [4], d_token=6, embedding=embedding, plr_frequencies=5)
    numerical = torch.randn(2, 3)
    codes = torch.zeros(2, 1, dtype=torch.int64)
    present, _ = tokenizer(numerical, torch.zeros(2, 3), codes)
    missing, _ = tokenizer(numerical, torch.tensor([[0.0, 1.0, 0.0]] * 2), codes)
    torch.testing.assert_close(missing[:, 1] - present[:, 1], tokenizer.missing[1].expand(2, 6))
    torch.testing.assert_close(missing[:, [0, 2]], present[:, [0, 2]])
    assert (tokenizer.periodic is not None) == (embedding == "plr")


def test_gradients_reach_every_parameter_of_the_periodic_tokens():
    torch.manual_seed(0)
    model = TabularAttentionModel(
        PLR,
        task="binary",
        numerical_tokens=["a", "b"],
        categorical_tokens=["c"],
        vocabulary_sizes=[3],
    )
    out = model(torch.randn(8, 2), torch.zeros(8, 2), torch.ones(8, 1, dtype=torch.int64))
    out.sum().backward()
    periodic = model.tokenizer.periodic
    for name in ("frequencies", "weight", "bias"):
        grad = getattr(periodic, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.tokenizer.weight is None  # no linear tokens beside the periodic ones


@pytest.mark.slow
def test_a_run_with_periodic_tokens_learns_and_round_trips(tmp_path):
    frame = tiny_frame("binary")
    run = train_run(frame, "y", model_config=PLR, train_config=QUICK)
    assert run.metrics["model"]["roc_auc"] > 0.8  # the planted x1 and color are learned
    loaded = Run.load(run.save(tmp_path / "run"))
    assert loaded.model_config == PLR
    test = tiny_frame("binary", rows=40, seed=5).drop(columns=["y"])
    pd.testing.assert_frame_equal(loaded.predict_frame(test), run.predict_frame(test))


def test_a_run_declaring_too_many_frequencies_is_refused_by_name(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["config"].update(numerical_embedding="plr", plr_frequencies=10**9)
    (run / "config.json").write_text(json.dumps(config))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["config.json"] = file_digest((run / "config.json").read_bytes())
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match=r"declares a plr_frequencies of 1,000,000,000"):
        Run.load(run)
