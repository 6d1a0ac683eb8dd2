"""Atlas round trip through npz + JSON without pickle; tidy CSV with escaping; JSON summary."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tiny_models import random_inputs, tiny_model

from mrta.analysis.checks import AblationResult, ablate_heads, sanity_checks
from mrta.analysis.cohorts import ALL_ROWS, CohortSpec
from mrta.analysis.collect import collect_attention
from mrta.analysis.heads import head_table
from mrta.analysis.permutation import PermutationImportance, permutation_importance
from mrta.jsonable import json_ready, write_json
from mrta.report.exports import (
    analysis_summary,
    atlas_paths,
    escape_cell,
    load_atlas,
    save_atlas,
    write_tidy_csv,
)

NUM = ("=cmd", "<b>bold</b>", "+plus")
CAT = ("-minus", "@at")


@pytest.fixture(scope="module")
def model():
    return tiny_model(NUM, CAT, [4, 4], task="binary")


@pytest.fixture(scope="module")
def inputs():
    num, ind, cat = random_inputs(40, 3, 2)
    return num, ind, cat, torch.randint(0, 2, (40,), generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def atlas(model, inputs):
    num, ind, cat, y = inputs
    frame = pd.DataFrame(
        {"=cmd": np.where(ind[:, 0] > 0, np.nan, num[:, 0].numpy()), "-minus": cat[:, 0].numpy()}
    )
    spec = CohortSpec(
        class_labels=("no", "yes"),
        deciles=("=cmd",),
        levels=("-minus",),
        top_levels=2,
        filters={"first half": np.arange(40) < 20},
    )
    return collect_attention(model, (num, ind, cat), frame, spec, targets=y)


def assert_same_atlas(a, b):
    assert a.layer_names == b.layer_names
    assert a.token_names == b.token_names
    assert a.cohorts == b.cohorts
    assert a.cohort_labels == b.cohort_labels
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.map_keys == b.map_keys
    for field in ("means", "stds", "head_mean_stds", "entropy"):
        for key in a.map_keys:
            np.testing.assert_array_equal(getattr(a, field)[key], getattr(b, field)[key])
            assert getattr(a, field)[key].dtype == getattr(b, field)[key].dtype
    np.testing.assert_array_equal(a.rollout_mean, b.rollout_mean)
    np.testing.assert_array_equal(a.rollout_std, b.rollout_std)


def test_atlas_round_trip_keeps_everything(atlas, tmp_path):
    keys = set(atlas.cohorts)
    assert {("correct", True), ("decile", "=cmd", None), ("level", "-minus", "other")} <= keys
    npz_path, json_path = save_atlas(atlas, tmp_path / "run.v1" / "attention")
    assert (npz_path, json_path) == atlas_paths(tmp_path / "run.v1" / "attention")
    assert npz_path.name == "attention.npz" and json_path.name == "attention.json"
    assert_same_atlas(atlas, load_atlas(tmp_path / "run.v1" / "attention"))


def test_npz_opens_without_pickle_and_names_are_unicode(atlas, tmp_path):
    npz_path, _ = save_atlas(atlas, tmp_path / "atlas")
    with np.load(npz_path, allow_pickle=False) as arrays:
        assert arrays["layer0.cat_num.queries"].tolist() == list(CAT)
        assert arrays["layer0.cat_num.keys"].tolist() == list(NUM)
        assert arrays["rollout.tokens"].tolist() == [*NUM, *CAT]
        for name in arrays.files:
            assert arrays[name].dtype != object
            if name.endswith((".queries", ".keys", "labels", "names", "tokens")):
                assert arrays[name].dtype.kind == "U", name
        assert arrays["layer1.num_cat.mean"].shape == (len(atlas.cohorts), 2, 3, 2)
    with zipfile.ZipFile(npz_path) as archive:
        assert "layer0.num_num.mean.npy" in archive.namelist()


def test_loading_another_format_is_refused(atlas, tmp_path):
    _, json_path = save_atlas(atlas, tmp_path / "atlas")
    meta = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="format version"):
        load_atlas(tmp_path / "atlas")


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-x", "'-x"),
        ("@at", "'@at"),
        ("\tx", "'\tx"),
        ("a=b", "a=b"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_escape_cell(text, escaped):
    assert escape_cell(text) == escaped


def test_tidy_csv_rows_values_and_escaping(atlas, tmp_path):
    path = tmp_path / "maps.csv"
    cohorts = [ALL_ROWS, ("filter", "first half")]
    written = write_tidy_csv(atlas, path, cohorts=cohorts)
    cells = sum(np.prod(atlas.means[key].shape[1:]) for key in atlas.map_keys)
    assert written == 2 * cells
    table = pd.read_csv(path, keep_default_na=False)
    assert list(table.columns) == ["layer", "map", "head", "cohort", "query", "key", "weight"]
    assert len(table) == written
    assert set(table["query"]) == {"'=cmd", "<b>bold</b>", "'+plus", "'-minus", "'@at"}
    assert set(table["cohort"]) == {"all rows", "first half, whole table"}
    sums = table.groupby(["layer", "map", "head", "cohort", "query"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    one = table.query("layer == 1 and map == 'cat_num' and head == 1 and cohort == 'all rows'")
    expected = atlas.means[(1, "cat_num")][0, 1]
    np.testing.assert_allclose(one["weight"].to_numpy().reshape(2, 3), expected, rtol=1e-5)
    assert one["query"].tolist()[:4] == ["'-minus"] * 3 + ["'@at"]
    assert one["key"].tolist()[:3] == ["'=cmd", "<b>bold</b>", "'+plus"]
    only_self = write_tidy_csv(atlas, tmp_path / "self.csv", map_ids=("num_num",))
    assert only_self == 2 * 2 * 3 * 3


def test_json_ready_handles_numpy_nan_tuples_and_dataclasses():
    value = {
        ("tuple", "key"): (np.float32(1.5), np.int64(2), float("nan"), np.array([[1, 2]])),
        "inf": float("inf"),
        "none": None,
    }
    assert json_ready(value) == {
        "('tuple', 'key')": [1.5, 2, None, [[1, 2]]],
        "inf": None,
        "none": None,
    }


def test_summary_is_strict_json_with_clear_keys(model, inputs, atlas, tmp_path):
    num, ind, cat, y = inputs

    def bce(logits, target):
        return F.binary_cross_entropy_with_logits(logits[:, 0], target.float())

    ablation = ablate_heads(model, (num, ind, cat), y, loss_fn=bce)
    permutation = permutation_importance(model, (num, ind, cat), y, loss_fn=bce, repeats=1)
    heads = head_table(atlas, ablation=ablation)
    summary = analysis_summary(
        atlas,
        heads=heads,
        permutation=permutation,
        ablation=ablation,
        sanity=sanity_checks(atlas, permutation, reference=atlas),
    )
    path = write_json(tmp_path / "summary.json", summary)
    loaded = json.loads(path.read_text())
    assert loaded["rows"] == 40 and loaded["cohort"] == "all rows"
    assert loaded["format_version"] == 3
    assert set(loaded["rollout"]) == {"mean", "of_mean_maps"}
    assert list(loaded["rollout"]["mean"]) == [*NUM, *CAT]
    # the importances and their deletion check come with the checks on test rows
    assert loaded["importance"] is None and loaded["faithfulness"] is None
    assert loaded["importance_rows"] is None
    assert len(loaded["heads"]) == 2 * 4 * 2
    assert loaded["heads"][0]["loss_delta"] == ablation.heads[0].loss_delta
    assert loaded["sanity"]["map_divergence"][0]["divergence"] == pytest.approx(0.0, abs=1e-6)
    assert "spearman" in loaded["sanity"]["rollout_vs_permutation"]
    assert loaded["ablation"]["baseline_metric"] is None
    assert AblationResult.from_dict(loaded["ablation"]) == ablation
    assert PermutationImportance.from_dict(loaded["permutation"]) == permutation
