"""Two-stream attention rollout against cases worked out by hand."""

import numpy as np
import pytest

from mrta.analysis.rollout import layer_flow, rollout, rollout_importance

# Two numerical tokens (a, b) and one categorical (x); tokens ordered [a, b, x].
LAYER_1 = {
    "num_num": np.array([[0.8, 0.2], [0.4, 0.6]]),
    "cat_cat": np.array([[1.0]]),
    "num_cat": np.array([[1.0], [1.0]]),
    "cat_num": np.array([[0.25, 0.75]]),
}
# By hand: S = [[.9, .1, 0], [.2, .8, 0], [0, 0, 1]]; C = [[.5, 0, .5], [0, .5, .5],
# [.125, .375, .5]]; L = C @ S.
FLOW_1 = np.array(
    [
        [0.45, 0.05, 0.5],  # .5·[.9, .1, 0] + .5·[0, 0, 1]
        [0.1, 0.4, 0.5],  # .5·[.2, .8, 0] + .5·[0, 0, 1]
        [0.1875, 0.3125, 0.5],  # .125·[.9, .1, 0] + .375·[.2, .8, 0] + .5·[0, 0, 1]
    ]
)
# A second layer whose self maps are the identity (S = I) and C = [[.5, 0, .5], [0, .5, .5],
# [.25, .25, .5]]: R = C @ FLOW_1.
LAYER_2 = {
    "num_num": np.eye(2),
    "cat_cat": np.array([[1.0]]),
    "num_cat": np.array([[1.0], [1.0]]),
    "cat_num": np.array([[0.5, 0.5]]),
}
ROLLOUT_2 = np.array(
    [
        [0.31875, 0.18125, 0.5],  # .5·row0 + .5·row2 of FLOW_1
        [0.14375, 0.35625, 0.5],  # .5·row1 + .5·row2
        [0.23125, 0.26875, 0.5],  # .25·row0 + .25·row1 + .5·row2
    ]
)


def test_one_layer_matches_the_hand_computation():
    np.testing.assert_allclose(layer_flow(LAYER_1, 2, 1), FLOW_1)
    importance = rollout_importance([{k: v[None] for k, v in LAYER_1.items()}], 2, 1)
    np.testing.assert_allclose(importance, [0.7375 / 3, 0.7625 / 3, 0.5])


def test_two_layers_multiply_last_on_the_left():
    np.testing.assert_allclose(rollout([LAYER_1, LAYER_2], 2, 1), ROLLOUT_2)
    with_heads = [{k: v[None] for k, v in maps.items()} for maps in (LAYER_1, LAYER_2)]
    np.testing.assert_allclose(
        rollout_importance(with_heads, 2, 1), [0.23125, 0.26875, 0.5], atol=1e-12
    )


def test_heads_are_averaged_before_the_rollout():
    # Two heads of num_num whose mean is LAYER_1's map.
    two_heads = dict(
        LAYER_1, num_num=np.array([[[1.0, 0.0], [0.4, 0.6]], [[0.6, 0.4], [0.4, 0.6]]])
    )
    two_heads = {k: v if v.ndim == 3 else v[None] for k, v in two_heads.items()}
    np.testing.assert_allclose(
        rollout_importance([two_heads], 2, 1),
        rollout_importance([{**two_heads, "num_num": LAYER_1["num_num"][None]}], 2, 1),
    )


def test_one_stream_has_no_cross_stage():
    maps = {"num_num": np.array([[0.5, 0.5], [0.0, 1.0]])}
    np.testing.assert_allclose(layer_flow(maps, 2, 0), [[0.75, 0.25], [0.0, 1.0]])
    importance = rollout_importance([{"num_num": maps["num_num"][None]}] * 2, 2, 0)
    np.testing.assert_allclose(importance.sum(), 1.0)


@pytest.mark.parametrize("n_num, n_cat", [(3, 2), (1, 4)])
def test_random_maps_give_stochastic_flows_and_importances_summing_to_one(n_num, n_cat):
    rng = np.random.default_rng(0)

    def stochastic(*shape):
        w = rng.random(shape)
        return w / w.sum(-1, keepdims=True)

    layers = [
        {
            "num_num": stochastic(5, 2, n_num, n_num),
            "cat_cat": stochastic(5, 2, n_cat, n_cat),
            "cat_num": stochastic(5, 2, n_cat, n_num),
            "num_cat": stochastic(5, 2, n_num, n_cat),
        }
        for _ in range(3)
    ]
    importance = rollout_importance(layers, n_num, n_cat)  # batch of 5 rows
    assert importance.shape == (5, n_num + n_cat)
    np.testing.assert_allclose(importance.sum(-1), 1.0)
    averaged = [{k: v.mean(1) for k, v in maps.items()} for maps in layers]
    np.testing.assert_allclose(rollout(averaged, n_num, n_cat).sum(-1), 1.0)
    # Batched equals row by row.
    row = [{k: v[2] for k, v in maps.items()} for maps in layers]
    np.testing.assert_allclose(importance[2], rollout_importance(row, n_num, n_cat))


def test_no_layers_is_an_error():
    with pytest.raises(ValueError, match="at least one layer"):
        rollout([], 1, 1)
