"""The row-resolution model: tokenizer, shapes per task, one-stream tables, token names, seeds."""

import json

import pytest
import torch

from mrta.analysis.recorder import AttentionRecorder
from mrta.config import ModelConfig
from mrta.nn.model import TabularAttentionModel, build_model

TINY = ModelConfig(
    d_token=8, d_model=16, num_layers=2, num_heads=2, dropout=0.0, numerical_embedding="linear"
)
NUM = ["age", "income", "score"]
CAT = ["city", "plan"]


def tiny_model(task="binary", num=NUM, cat=CAT, n_classes=None, config=TINY):
    return TabularAttentionModel(
        config,
        task=task,
        numerical_tokens=num,
        categorical_tokens=cat,
        vocabulary_sizes=[4, 3][: len(cat)],
        n_classes=n_classes,
    )


def inputs(batch=5, n_num=3, n_cat=2):
    return (
        torch.randn(batch, n_num),
        (torch.rand(batch, n_num) < 0.3).float(),
        torch.randint(0, 3, (batch, n_cat)),
    )


@pytest.mark.parametrize(
    ("task", "n_classes", "width"),
    [("binary", None, 1), ("multiclass", 4, 4), ("regression", None, 1)],
)
def test_logits_shape_per_task(task, n_classes, width):
    model = tiny_model(task, n_classes=n_classes)
    assert model(*inputs()).shape == (5, width)
    assert model.task == task
    assert isinstance(model.layers, torch.nn.ModuleList) and len(model.layers) == 2


def test_every_layer_knows_its_token_names_and_the_recorder_labels_maps():
    model = tiny_model()
    assert model.numerical_tokens == NUM and model.categorical_tokens == CAT
    for layer in model.layers:
        assert layer.token_names == {"num": NUM, "cat": CAT}
    with AttentionRecorder(model) as recorder:
        model(*inputs())
    assert recorder.token_names(1, "cat_num") == (CAT, NUM)
    assert {map_id for _, map_id in recorder.keys} == set(model.map_ids)


@pytest.mark.parametrize(("num", "cat", "maps"), [(NUM, [], ["num_num"]), ([], CAT, ["cat_cat"])])
def test_one_stream_tables_use_self_attention_only(num, cat, maps):
    model = tiny_model(num=num, cat=cat)
    assert model.map_ids == maps
    logits = model(*inputs(n_num=len(num), n_cat=len(cat)))  # zero-column tensors
    assert logits.shape == (5, 1)
    logits.sum().backward()
    with AttentionRecorder(model) as recorder:
        model(*inputs(n_num=len(num), n_cat=len(cat)))
    assert {map_id for _, map_id in recorder.keys} == set(maps)


def test_missing_indicator_moves_only_its_own_token():
    model = tiny_model()
    x, _, c = inputs(batch=1)
    off = torch.zeros(1, 3)
    on = off.clone()
    on[0, 1] = 1.0
    tokens_off, _ = model.tokenizer(x, off, c)
    tokens_on, _ = model.tokenizer(x, on, c)
    changed = (tokens_off != tokens_on).any(dim=-1)[0]
    assert changed.tolist() == [False, True, False]
    assert torch.allclose(tokens_on[0, 1] - tokens_off[0, 1], model.tokenizer.missing[1])


def test_the_same_seed_gives_the_same_initial_weights():
    torch.manual_seed(7)
    first = tiny_model()
    torch.manual_seed(7)
    second = tiny_model()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    rebuilt = build_model(json.loads(json.dumps(first.to_dict())), 7)
    for a, b in zip(first.state_dict().values(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_build_model_leaves_the_global_random_state_alone():
    spec = tiny_model().to_dict()
    state = torch.get_rng_state()
    build_model(spec, 3)
    assert torch.equal(torch.get_rng_state(), state)


def test_bad_inputs_and_arguments_are_clear_errors():
    model = tiny_model()
    x, ind, c = inputs()
    with pytest.raises(ValueError, match=r"numerical must have shape \(batch, 3\)"):
        model(x[:, :2], ind, c)
    with pytest.raises(ValueError, match="int64"):
        model(x, ind, c.int())
    with pytest.raises(ValueError, match="n_classes"):
        tiny_model("multiclass", n_classes=2)
    with pytest.raises(ValueError, match="at least one"):
        tiny_model(num=[], cat=[])
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=10, num_heads=4)
