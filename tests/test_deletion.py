"""Deletion curves: removal values, per-row losses, areas against random orders, the bootstrap."""

import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import tiny_frame
from tiny_models import model_for

from mrta.analysis import deletion
from mrta.analysis.deletion import (
    EXPORT_KEY,
    Faithfulness,
    deletion_area,
    deletion_losses,
    faithfulness,
    random_orders,
    removal_values,
    row_losses,
    split_halves,
)
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import Kind, infer_schema
from mrta.training.inference import predict_logits
from mrta.training.losses import model_target, task_loss

COLUMNS = ("c0", "c1", "c2", "c3", "c4", "c5")


def random_loss_arrays(n=5, rows=40, n_orders=4, seed=0):
    """Unstructured per-row losses: two methods and the random orders (ends do not agree)."""
    rng = np.random.default_rng(seed)
    methods = {"a": rng.gamma(2.0, size=(n + 1, rows)), "b": rng.gamma(2.0, size=(n + 1, rows))}
    return methods, rng.gamma(2.0, size=(n_orders, n + 1, rows))


def orders_for(n, n_orders, methods=("a", "b")):
    columns = COLUMNS[:n]
    return {name: columns for name in methods}, random_orders(columns, n_orders, seed=0)


def linear_setup(weights, rows=120, seed=0):
    """Rows of positive values and a fake model whose loss is ``-sum_c w_c x_c``: removing a
    column (replacing it by 0) raises a row's loss by ``w_c x_c``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.exponential(size=(rows, len(weights))), columns=list(weights))
    w = np.array(list(weights.values()))

    def losses_of(rows_now):
        return -(rows_now[list(weights)].to_numpy() @ w)

    return frame, {name: 0.0 for name in weights}, losses_of


def curves_of(weights, method_orders, seed=0):
    frame, removal, losses_of = linear_setup(weights, seed=seed)
    orders = random_orders(list(weights), deletion.RANDOM_ORDERS, seed=seed)
    random_losses = np.stack([deletion_losses(losses_of, frame, removal, o) for o in orders])
    methods = {
        name: deletion_losses(losses_of, frame, removal, order)
        for name, order in method_orders.items()
    }
    return methods, random_losses, orders


# -- areas and the bootstrap -----------------------------------------------------------------
def test_area_is_numpy_trapezoid_of_the_mean_curves():
    methods, random_losses = random_loss_arrays()
    orders, random = orders_for(5, 4)
    result = faithfulness(methods, random_losses, orders=orders, random=random, resamples=200)
    reference = random_losses.mean(axis=(0, 2))
    x = np.arange(6) / 5
    for name, losses in methods.items():
        expected = np.trapezoid(losses.mean(axis=1) - reference, x=x)
        assert result.methods[name].area == pytest.approx(expected, rel=1e-12)
        assert deletion_area(losses.mean(axis=1), reference) == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(result.methods[name].curve, losses.mean(axis=1))
    np.testing.assert_allclose(result.random.curve, reference)
    assert (result.rows, result.columns, result.resamples) == (40, 5, 200)


def test_area_with_agreeing_ends_is_the_inner_sum():
    rng = np.random.default_rng(1)
    curve, reference = rng.normal(size=7), rng.normal(size=7)
    reference[[0, -1]] = curve[[0, -1]]
    assert deletion_area(curve, reference) == pytest.approx((curve - reference)[1:-1].sum() / 6)
    with pytest.raises(ValueError, match="reference must have"):
        deletion_area(curve, reference[:-1])


def test_interval_holds_the_area_and_the_bootstrap_is_seeded():
    methods, random_losses = random_loss_arrays()
    orders, random = orders_for(5, 4)
    run = partial(faithfulness, methods, random_losses, orders=orders, random=random)
    first, again, other = run(seed=3), run(seed=3), run(seed=4)
    assert first == again
    for name in methods:
        method = first.methods[name]
        assert method.low < method.area < method.high
        assert (method.low, method.high) != (other.methods[name].low, other.methods[name].high)
        assert method.area == other.methods[name].area
    narrower = run(seed=3, level=0.5).methods["a"]
    assert first.methods["a"].low < narrower.low < narrower.high < first.methods["a"].high


def test_the_bootstrap_is_the_same_in_chunks(monkeypatch):
    methods, random_losses = random_loss_arrays()
    orders, random = orders_for(5, 4)
    whole = faithfulness(methods, random_losses, orders=orders, random=random, resamples=300)
    monkeypatch.setattr(deletion, "CHUNK_CELLS", 7 * 40)  # 7 resamples per chunk
    chunked = faithfulness(methods, random_losses, orders=orders, random=random, resamples=300)
    assert chunked == whole


def test_bootstrap_interval_is_that_of_resampled_rows():
    """Against the definition: resample rows by index, recompute both mean curves, the area."""
    methods, random_losses = random_loss_arrays(rows=30)
    orders, random = orders_for(5, 4)
    result = faithfulness(methods, random_losses, orders=orders, random=random, resamples=2000)
    rng = np.random.default_rng(9)
    areas = []
    for _ in range(2000):
        rows = rng.integers(0, 30, 30)
        areas.append(
            deletion_area(
                methods["a"][:, rows].mean(axis=1), random_losses[:, :, rows].mean(axis=(0, 2))
            )
        )
    low, high = np.percentile(areas, [2.5, 97.5])
    spread = high - low
    assert result.methods["a"].low == pytest.approx(low, abs=0.1 * spread)
    assert result.methods["a"].high == pytest.approx(high, abs=0.1 * spread)


def test_a_faithful_ranking_beats_random_and_a_random_order_does_not():
    weights = dict(zip(COLUMNS, [8.0, 4.0, 2.0, 1.0, 0.5, 0.25], strict=True))
    methods, random_losses, random = curves_of(
        weights, {"faithful": COLUMNS, "backwards": COLUMNS[::-1]}
    )
    orders = {"faithful": COLUMNS, "backwards": COLUMNS[::-1]}
    result = faithfulness(methods, random_losses, orders=orders, random=random)
    assert result.methods["faithful"].beats_random
    assert result.methods["faithful"].area > result.random.high  # beyond any random order
    assert not result.methods["backwards"].beats_random
    assert result.methods["backwards"].high < 0
    # every order starts from the untouched rows and ends with every column removed
    curves = [*result.methods.values()]
    assert {m.curve[0] for m in curves} == {result.random.curve[0]}
    assert {m.curve[-1] for m in curves} == {result.random.curve[-1]} == {0.0}

    # Columns that matter alike: one random order, scored as a method, is no better than random
    same = dict.fromkeys(COLUMNS, 1.0)
    _, random_losses, random = curves_of(same, {}, seed=1)
    result = faithfulness(
        {"lucky": random_losses[0]}, random_losses, orders={"lucky": random[0]}, random=random
    )
    lucky = result.methods["lucky"]
    assert not lucky.beats_random
    assert lucky.low < 0 < lucky.high
    assert lucky.area == pytest.approx(result.random.areas[0])
    assert result.random.low <= lucky.area <= result.random.high


def test_random_band_and_spread():
    methods, random_losses = random_loss_arrays(n_orders=20)
    orders, random = orders_for(5, 20)
    result = faithfulness(methods, random_losses, orders=orders, random=random, resamples=100)
    per_order = random_losses.mean(axis=2)
    np.testing.assert_allclose(result.random.band_low, np.percentile(per_order, 5, axis=0))
    np.testing.assert_allclose(result.random.band_high, np.percentile(per_order, 95, axis=0))
    areas = [deletion_area(curve, per_order.mean(axis=0)) for curve in per_order]
    np.testing.assert_allclose(result.random.areas, areas)
    assert (result.random.low, result.random.high) == pytest.approx(np.percentile(areas, [5, 95]))
    assert sum(result.random.areas) == pytest.approx(0.0, abs=1e-12)  # against their own mean


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_columns_give_zero_areas(n):
    methods, random_losses = random_loss_arrays(n=n, n_orders=3)
    orders, random = orders_for(n, 3)
    result = faithfulness(methods, random_losses, orders=orders, random=random, resamples=50)
    for method in result.methods.values():
        assert (method.area, method.low, method.high, method.beats_random) == (0, 0, 0, False)
    assert result.random.areas == (0.0,) * 3
    assert Faithfulness.from_dict(result.to_dict()) == result


def test_faithfulness_refuses_bad_input():
    methods, random_losses = random_loss_arrays()
    orders, random = orders_for(5, 4)
    call = partial(faithfulness, orders=orders, random=random)
    with pytest.raises(ValueError, match="method_losses\\['a'\\] must have shape"):
        call({**methods, "a": methods["a"][:, :-1]}, random_losses)
    with pytest.raises(ValueError, match="called 'random'"):
        faithfulness(
            {"random": methods["a"]}, random_losses, orders={"random": COLUMNS[:5]}, random=random
        )
    with pytest.raises(ValueError, match="orders must give"):
        faithfulness(methods, random_losses, orders={"a": COLUMNS[:5]}, random=random)
    with pytest.raises(ValueError, match=r"random must hold 3 orders.*got 4"):
        call(methods, random_losses[:3])
    with pytest.raises(ValueError, match=r"orders\['b'\] must list every column.*lacks 'c4'"):
        faithfulness(
            methods, random_losses, orders={"a": COLUMNS[:5], "b": COLUMNS[:4]}, random=random
        )
    with pytest.raises(ValueError, match="level"):
        call(methods, random_losses, level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        call(methods, random_losses, resamples=0)


def test_round_trip_and_export_keys():
    methods, random_losses = random_loss_arrays()
    orders, random = orders_for(5, 4)
    result = faithfulness(methods, random_losses, orders=orders, random=random, resamples=100)
    data = json.loads(json.dumps(result.to_dict()))
    assert Faithfulness.from_dict(data) == result
    export = data[EXPORT_KEY]
    assert list(export) == ["a", "b", "random"]
    for name in ("a", "b"):
        assert set(export[name]) == {"area", "low", "high", "beats_random"}
        assert export[name]["beats_random"] is (export[name]["low"] > 0)
    assert set(export["random"]) == {"low", "high"}
    assert set(data["curves"]) == {"a", "b", "random"}
    assert all(len(curve) == 6 for curve in data["curves"].values())


# -- splits, removal values and orders -------------------------------------------------------
@pytest.mark.parametrize("n_rows", [4, 5, 101])
def test_split_halves(n_rows):
    ranking, curve = split_halves(n_rows, seed=7)
    assert len(np.intersect1d(ranking, curve)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([ranking, curve])), np.arange(n_rows))
    assert abs(len(ranking) - len(curve)) <= 1
    assert (np.diff(ranking) > 0).all() and (np.diff(curve) > 0).all()
    again = split_halves(n_rows, seed=7)
    np.testing.assert_array_equal(again[0], ranking)
    np.testing.assert_array_equal(again[1], curve)
    assert (len(ranking), len(curve)) == (n_rows // 2, n_rows - n_rows // 2)


def test_split_halves_depend_on_the_seed():
    assert not np.array_equal(split_halves(101, seed=7)[0], split_halves(101, seed=8)[0])


def test_split_halves_refuses_tiny_tables():
    with pytest.raises(ValueError, match="n_rows must be an integer of at least 4"):
        split_halves(3, seed=0)


def test_removal_values_match_pandas():
    frame = pd.DataFrame(
        {
            "amount": [1.0, np.nan, 4.0, 10.0, np.nan, 3.0],
            "empty": [np.nan] * 6,
            "price": ["1,5", "2,5", "x", "4", None, "3"],  # a decimal comma; "x" is missing
            "when": ["2024-01-01", "2024-01-03", None, "2024-01-08", "2024-01-01", "2024-01-02"],
            "color": ["red", "blue", None, "blue", "red", "green"],  # tie: blue before red
            "code": [3, 2, 2, 3, 1, 3],  # whole numbers as category codes
            "nothing": [None] * 6,
            "y": [0, 1, 0, 1, 0, 1],
        }
    )
    roles = {"code": "categorical", "color": "categorical", "nothing": "categorical"}
    roles |= {"amount": "numerical", "empty": "numerical", "price": "numerical"}
    schema = infer_schema(frame, "y", roles=roles)
    assert schema.column("when").kind is Kind.DATE
    assert schema.column("price").decimal == ","
    removal = removal_values(frame, schema)
    assert list(removal) == [*schema.numerical_columns, *schema.categorical_columns]
    assert removal["amount"] == pytest.approx(frame["amount"].mean())  # pandas skips NaN
    assert np.isnan(removal["empty"])
    assert removal["price"] == pytest.approx(np.mean([1.5, 2.5, 4, 3]))
    assert removal["when"] == pd.to_datetime(frame["when"]).mean()
    counts = frame["color"].value_counts()
    assert removal["color"] == min(counts[counts == counts.max()].index) == "blue"
    assert removal["code"] == str(frame["code"].mode()[0]) == "3"
    assert removal["nothing"] is None
    # Written back in raw space, the schema reads each column as its removal value
    removed = frame.assign(**removal)
    features = schema.features(removed)
    means = [removal["amount"], np.nan, removal["price"]]
    np.testing.assert_allclose(features.numerical[:, :3], np.tile(means, (6, 1)))
    mean_date = removal["when"]
    by_part = {"year": mean_date.year, "month": mean_date.month, "weekday": mean_date.weekday()}
    parts = [by_part[part] for part in schema.column("when").date_parts]
    assert parts and (features.numerical[:, 3:] == parts).all()
    assert (features.categorical == [["blue", "3", None]] * 6).all()


def test_random_orders_are_seeded_permutations():
    orders = random_orders(COLUMNS, 5, seed=2)
    assert all(sorted(order) == sorted(COLUMNS) for order in orders)
    assert len(set(orders)) == 5
    assert random_orders(COLUMNS, 5, seed=2) == orders
    assert random_orders(COLUMNS, 3, seed=2) == orders[:3]
    with pytest.raises(ValueError, match="count"):
        random_orders(COLUMNS, 0, seed=2)
    with pytest.raises(ValueError, match="'c0' repeat"):
        random_orders(["c0", "c0"], 1, seed=2)


# -- deletion curves -------------------------------------------------------------------------
def test_deletion_losses_replace_columns_one_after_another():
    frame, removal, losses_of = linear_setup(dict.fromkeys(COLUMNS[:3], 1.0), rows=5)
    removal = {"c0": -1.0, "c1": -2.0, "c2": -3.0}
    seen = []

    def recording(rows_now):
        seen.append(rows_now.copy())
        return losses_of(rows_now)

    order = ("c2", "c0", "c1")
    curve = deletion_losses(recording, frame, removal, order)
    assert curve.shape == (4, 5)
    pd.testing.assert_frame_equal(seen[0], frame)
    np.testing.assert_array_equal(curve[0], losses_of(frame))
    for k, rows_now in enumerate(seen):
        for position, name in enumerate(order):
            expected = removal[name] if position < k else frame[name]
            np.testing.assert_array_equal(rows_now[name], np.broadcast_to(expected, 5))
    np.testing.assert_allclose(curve[-1], np.full(5, 6.0))


def test_deletion_losses_refuse_a_wrong_order():
    frame, removal, losses_of = linear_setup(dict.fromkeys(COLUMNS[:3], 1.0), rows=5)
    with pytest.raises(ValueError, match=r"order must list every column.*lacks 'c2'"):
        deletion_losses(losses_of, frame, removal, ["c0", "c1"])
    with pytest.raises(ValueError, match=r"has unknown 'zz'.*repeats 'c0'"):
        deletion_losses(losses_of, frame, removal, ["c0", "c1", "c2", "zz", "c0"])
    with pytest.raises(ValueError, match="losses_of must give one loss per row"):
        deletion_losses(lambda rows: np.zeros(2), frame, removal, ["c0", "c1", "c2"])


@pytest.fixture(scope="module")
def real_model():
    frame = tiny_frame("binary", rows=80)
    schema = infer_schema(frame, "y")
    preprocessor = Preprocessor.fit(frame.iloc[:50], schema)
    return model_for(preprocessor), preprocessor, frame


def test_deletion_curves_of_a_real_model(real_model):
    model, preprocessor, frame = real_model
    train, test = frame.iloc[:50], frame.iloc[50:]
    removal = removal_values(train, preprocessor.schema)
    losses_of = partial(row_losses, model, preprocessor)
    orders = random_orders(list(removal), 2, seed=0)
    first, second = (deletion_losses(losses_of, test, removal, order) for order in orders)
    assert orders[0] != orders[1]
    np.testing.assert_array_equal(first[0], losses_of(test))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_allclose(first[-1], second[-1], rtol=1e-6)
    # with every column removed the rows differ only in the target
    assert len(np.unique(first[-1].round(5))) == 2


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_row_losses_average_to_the_task_loss(task):
    frame = tiny_frame(task, rows=60)
    preprocessor = Preprocessor.fit(frame.iloc[:40], infer_schema(frame, "y"))
    model = model_for(preprocessor)
    rows = frame.iloc[40:]
    losses = row_losses(model, preprocessor, rows)
    assert losses.shape == (20,) and losses.dtype == np.float64
    encoded = preprocessor.transform(rows)
    logits = predict_logits(model, encoded)
    target = model_target(
        preprocessor.schema.task, encoded.target, preprocessor.target_mean, preprocessor.target_std
    )
    mean = float(task_loss(preprocessor.schema.task, logits, target))
    assert losses.mean() == pytest.approx(mean, rel=1e-6)
    if task == "regression":  # by hand: squared error against the standardised target
        z = (rows["y"].to_numpy() - preprocessor.target_mean) / preprocessor.target_std
        np.testing.assert_allclose(losses, (logits[:, 0].double().numpy() - z) ** 2, rtol=1e-5)
    with pytest.raises(ValueError, match="target column 'y'"):
        row_losses(model, preprocessor, rows.drop(columns="y"))
    assert torch.is_grad_enabled()
