"""The recorder: hooks in and out, the recorded weights, keep and stream modes, cohorts."""

import pytest
import torch
from torch import nn

from mrta import AttentionRecorder, MultiResolutionTabularAttention, RecordingLimitError
from mrta.streams import MAP_IDS


class Stack(nn.Module):
    def __init__(self, depth=2, **kw):
        super().__init__()
        first = MultiResolutionTabularAttention(2, 8, 0.1, num_features=3, cat_features=2, **kw)
        rest = [
            MultiResolutionTabularAttention(2, 8, 0.1, num_features=8, cat_features=8)
            for _ in range(depth - 1)
        ]
        self.layers = nn.ModuleList([first, *rest])

    def forward(self, num, cat, **masks):
        for layer in self.layers:
            num, cat = layer(num, cat, **masks)
        return num, cat


def batch(b=3, tn=4, tc=5):
    return torch.randn(b, tn, 3), torch.randn(b, tc, 2)


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_records_every_block_of_every_layer_with_shapes_and_row_sums():
    model = Stack(depth=2).eval()
    with AttentionRecorder(model) as rec, torch.no_grad():
        model(*batch(tn=4, tc=5))
    assert rec.keys == sorted((i, m) for i in range(2) for m in MAP_IDS)
    shapes = {"num_num": (4, 4), "cat_cat": (5, 5), "cat_num": (5, 4), "num_cat": (4, 5)}
    for layer in range(2):
        for map_id, (tq, tk) in shapes.items():
            w = rec.weights(layer, map_id)
            assert w.shape == (3, 2, tq, tk)
            assert w.device.type == "cpu" and not w.requires_grad
            torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, tq))


def test_hooks_detach_cleanly_even_after_an_error():
    model = Stack()
    before = hook_count(model)
    with AttentionRecorder(model, mode="stream", cohorts=True):
        assert hook_count(model) == before + 8 + 1  # and the pre-hook that files held batches
        assert all(
            b.record_weights == 1
            for layer in model.layers
            for b in layer.attention_blocks().values()
        )
    assert hook_count(model) == before
    with pytest.raises(RuntimeError, match="boom"), AttentionRecorder(model):
        raise RuntimeError("boom")
    assert hook_count(model) == before
    assert all(
        b.record_weights == 0 for layer in model.layers for b in layer.attention_blocks().values()
    )


@pytest.mark.parametrize("masked", [False, True])
def test_recording_and_fused_paths_agree(monkeypatch, masked):
    import mrta.nn.attention

    monkeypatch.setattr(
        mrta.nn.attention, "FUSED_MIN_MAP", 0
    )  # the fused kernel even for tiny maps
    model = Stack().eval()
    num, cat = batch()
    masks = {}
    if masked:
        masks = {"num_mask": torch.rand(3, 4) > 0.3, "cat_mask": torch.rand(3, 5) > 0.3}
        masks["num_mask"][:, 0] = masks["cat_mask"][:, 0] = True
    with torch.no_grad():
        fused = model(num, cat, **masks)
        with AttentionRecorder(model) as rec:
            recorded = model(num, cat, **masks)
    for a, b in zip(fused, recorded, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if masked:  # padded keys receive no attention
        w = rec.weights(0, "cat_num")
        assert (w.masked_select(~masks["num_mask"][:, None, None, :]) == 0).all()


def test_weights_recorded_in_training_are_taken_before_dropout():
    model = Stack().train()
    with AttentionRecorder(model) as rec:
        model(*batch())[0].sum().backward()
    w = rec.weights(1, "num_cat")
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 4))


def test_keep_mode_refuses_past_its_memory_cap():
    model = Stack(depth=1).eval()
    one_batch = 3 * 2 * (16 + 25 + 20 + 20) * 4  # bytes of the four maps of one batch
    with AttentionRecorder(model, max_bytes=one_batch) as rec, torch.no_grad():
        model(*batch())
        with pytest.raises(RecordingLimitError, match=r"exceed max_bytes=.*mode='stream'"):
            model(*batch())
    assert rec.weights(0, "num_num").shape[0] == 3


def test_stream_means_and_stds_equal_those_of_kept_batches():
    model = Stack().eval()
    data = [batch(b=b) for b in (3, 5, 2)]
    with (
        AttentionRecorder(model) as kept,
        AttentionRecorder(model, mode="stream") as streamed,
        torch.no_grad(),
    ):
        for num, cat in data:
            model(num, cat)
    for layer, map_id in kept.keys:
        torch.testing.assert_close(streamed.mean(layer, map_id), kept.mean(layer, map_id))
        torch.testing.assert_close(streamed.std(layer, map_id), kept.std(layer, map_id))
        assert streamed.cohort_stats(layer, map_id).count == 10


def test_cohorts_given_after_the_forward_pass():
    model = Stack(depth=1).eval()
    data = [batch(b=4) for _ in range(3)]
    with (
        AttentionRecorder(model) as kept,
        AttentionRecorder(model, mode="stream", cohorts=True) as rec,
    ):
        positive = []
        with torch.no_grad():
            for num, cat in data:
                out = model(num, cat)[0]
                pred = out[:, 0, 0] > 0  # known only after the forward pass
                positive.append(pred)
                rec.commit({"pred=1": pred, "pred=0": ~pred})
    every = kept.weights(0, "cat_num").double()
    pos = torch.cat(positive)
    for cohort, rows in (("pred=1", pos), ("pred=0", ~pos), ("all", torch.ones_like(pos))):
        if rows.any():
            torch.testing.assert_close(rec.mean(0, "cat_num", cohort), every[rows].mean(0))
            assert rec.cohort_stats(0, "cat_num", cohort).count == int(rows.sum())


def test_bad_cohort_masks_and_unknown_maps_are_refused():
    model = Stack(depth=1).eval()
    with AttentionRecorder(model, mode="stream", cohorts=True) as rec, torch.no_grad():
        model(*batch(b=3))
        with pytest.raises(ValueError, match=r"cohort 'x' must be a bool row mask of shape \(3,\)"):
            rec.commit({"x": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(KeyError, match="nothing streamed for layer 0, map 'cat_num', cohort 'y'"):
        rec.mean(0, "cat_num", "y")
    with pytest.raises(ValueError, match="contains no MultiResolutionTabularAttention"):
        AttentionRecorder(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="mode must be 'keep' or 'stream'"):
        AttentionRecorder(model, mode="all")
    with pytest.raises(ValueError, match="cohorts=True needs mode='stream'"):
        AttentionRecorder(model, cohorts=True)
    with AttentionRecorder(model, mode="stream") as plain, torch.no_grad():
        model(*batch(b=3))
        with pytest.raises(ValueError, match=r"create it with .*cohorts=True\) to commit cohorts"):
            plain.commit({"x": torch.ones(3, dtype=torch.bool)})


def test_token_names_label_both_axes():
    layer = MultiResolutionTabularAttention(2, 8, 0.0, name="first")
    layer.token_names = {"num": ["age", "income", "debt", "score"], "cat": list("abcde")}
    with AttentionRecorder(layer) as rec, torch.no_grad():
        layer(*batch())
    assert rec.layer_names == ["first"]
    assert rec.token_names(0, "cat_num") == (list("abcde"), ["age", "income", "debt", "score"])
    assert rec.token_names(0, "num_cat") == (["age", "income", "debt", "score"], list("abcde"))
