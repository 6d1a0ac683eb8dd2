"""How faithful is a column ranking? Deletion curves against random orders, with a bootstrap.

The test rows are cut in two halves (:func:`split_halves`): importances are computed on the
first (the **ranking half**) and curves on the second (the **curve half**), so that a method
is not scored on the rows it ranked on. Columns are removed one after another in the order a
method ranks them (most important first); a removed column is replaced, in raw space, by its
training mean (numerical) or most frequent level (categorical) (:func:`removal_values`) and
keeps that value in every later step. After each removal the per-row test loss is recorded
(:func:`deletion_losses`), on the model's scale (:func:`row_losses`). The same is done for
:data:`RANDOM_ORDERS` random orders (:func:`random_orders`).

Definitions, for ``n`` columns and ``R`` rows of the curve half (:func:`faithfulness`):

- a **curve** is the mean loss over the rows after removing ``k = 0..n`` columns; every order
  starts from the untouched rows (``k = 0``) and ends with every column removed (``k = n``);
- the **area** of a method (:func:`deletion_area`) is the area between its curve and the mean
  curve of the random orders over ``x = k / n``, by the trapezoid rule; since the curves agree
  at both ends it is ``(1/n) * sum over k = 1..n-1 of (curve_k - random_k)``. Positive: removing
  the method's top columns first raises the loss faster than removing columns at random, so the
  ranking puts first the columns the model relies on (higher = more faithful);
- the **interval** is the bootstrap percentile interval at :data:`LEVEL` of the area over the
  rows of the curve half: :data:`BOOTSTRAP_RESAMPLES` resamples of the rows with replacement,
  the same resamples for every method and for the random orders (whose mean curve is recomputed
  on each), and ``beats_random`` is its lower end above zero. The area is a mean over rows of
  per-row contributions, so every resample's area is one product of multinomial row counts with
  those contributions;
- the **random spread** is the 5th and 95th percentiles of the random orders' own areas, each
  against the mean random curve (itself included): how far an order drawn at random lands from
  the random mean, the scale on which a method's area reads.

:meth:`Faithfulness.to_dict` gives the export under :data:`EXPORT_KEY`::

    {"faithfulness": {method: {"area", "low", "high", "beats_random"}, ...,
                      "random": {"low", "high"}}, ...}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from mrta.data import values
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import Kind, TableSchema
from mrta.training.inference import predict_logits
from mrta.training.losses import model_target, task_loss

RANDOM_ORDERS = 20  # the number: the band's 5th and 95th percentiles rest on one order
BOOTSTRAP_RESAMPLES = 1000  # the interval's ends at 95 % rest on 25 resamples each
LEVEL = 0.95
SPREAD_PERCENTILES = (5.0, 95.0)  # of the random orders: their band per k and their areas' spread
MIN_ROWS = 4  # two per half: a bootstrap of one row has no spread
CHUNK_CELLS = 1 << 20  # resampled row counts held at once: 8 MB whatever the curve half
EXPORT_KEY = "faithfulness"
RANDOM = "random"  # the random orders' key in the export (so no method may be called that)

#: ``losses_of(rows) -> per-row losses``. Shape: ``R`` rows -> ``(R,)``.
LossesOf = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class MethodFaithfulness:
    """One importance method's deletion curve and its area against the random orders.

    Attributes:
        order: the columns, most important first, in the order they were removed.
        curve: the mean loss over the curve half after removing the first ``k`` columns.
        area: the area between ``curve`` and the mean random curve (see the module docstring).
        low, high: the bootstrap percentile interval of ``area`` at the result's level.

    Shape: curve ``(n + 1,)``.
    """

    order: tuple[str, ...]
    curve: tuple[float, ...]
    area: float
    low: float
    high: float

    @property
    def beats_random(self) -> bool:
        """The interval's lower end is above zero: the ranking beats random orders."""
        return self.low > 0


@dataclass(frozen=True)
class RandomBaseline:
    """The random orders' curves: their mean, their band per ``k`` and their areas' spread.

    Attributes:
        orders: the random orders of the columns.
        curve: the mean over the orders of their mean loss after ``k`` removals.
        band_low, band_high: the 5th and 95th percentiles over the orders, per ``k``.
        areas: each order's own area against ``curve``.
        low, high: the 5th and 95th percentiles of ``areas``.

    Shape: curve, band_low, band_high ``(n + 1,)``; areas ``(n_orders,)``.
    """

    orders: tuple[tuple[str, ...], ...]
    curve: tuple[float, ...]
    band_low: tuple[float, ...]
    band_high: tuple[float, ...]
    areas: tuple[float, ...]
    low: float
    high: float


@dataclass(frozen=True)
class Faithfulness:
    """Every method's deletion area against random orders, on ``rows`` rows of the curve half.

    Attributes:
        methods: each method's curve, area and interval, by method id.
        random: the random orders' mean curve, band and spread.
        rows: rows of the curve half.
        columns: columns removed (``n``).
        resamples, level, seed: of the bootstrap.
    """

    methods: Mapping[str, MethodFaithfulness]
    random: RandomBaseline
    rows: int
    columns: int
    resamples: int
    level: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the export under :data:`EXPORT_KEY` (``{method: {"area", "low", "high",
        "beats_random"}, "random": {"low", "high"}}``), and for plots and :meth:`from_dict`
        ``"curves"`` (each method's and ``"random"``'s), ``"random_band"`` (``"low"``,
        ``"high"``), ``"random_areas"``, ``"orders"``, ``"random_orders"``, ``"rows"``,
        ``"columns"``, ``"resamples"``, ``"level"`` and ``"seed"``."""
        export: dict[str, Any] = {
            name: {
                "area": method.area,
                "low": method.low,
                "high": method.high,
                "beats_random": method.beats_random,
            }
            for name, method in self.methods.items()
        }
        export[RANDOM] = {"low": self.random.low, "high": self.random.high}
        curves = {name: list(method.curve) for name, method in self.methods.items()}
        curves[RANDOM] = list(self.random.curve)
        return {
            EXPORT_KEY: export,
            "curves": curves,
            "random_band": {"low": list(self.random.band_low), "high": list(self.random.band_high)},
            "random_areas": list(self.random.areas),
            "orders": {name: list(method.order) for name, method in self.methods.items()},
            "random_orders": [list(order) for order in self.random.orders],
            "rows": self.rows,
            "columns": self.columns,
            "resamples": self.resamples,
            "level": self.level,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faithfulness:
        """Inverse of :meth:`to_dict`."""
        export = data[EXPORT_KEY]
        methods = {
            name: MethodFaithfulness(
                order=tuple(order),
                curve=_floats(data["curves"][name]),
                area=float(export[name]["area"]),
                low=float(export[name]["low"]),
                high=float(export[name]["high"]),
            )
            for name, order in data["orders"].items()
        }
        random = RandomBaseline(
            orders=tuple(tuple(order) for order in data["random_orders"]),
            curve=_floats(data["curves"][RANDOM]),
            band_low=_floats(data["random_band"]["low"]),
            band_high=_floats(data["random_band"]["high"]),
            areas=_floats(data["random_areas"]),
            low=float(export[RANDOM]["low"]),
            high=float(export[RANDOM]["high"]),
        )
        return cls(
            methods=methods,
            random=random,
            rows=int(data["rows"]),
            columns=int(data["columns"]),
            resamples=int(data["resamples"]),
            level=float(data["level"]),
            seed=int(data["seed"]),
        )


def _floats(items: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    return tuple(float(item) for item in items)


def _check_integer(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


# -- the rows and the removal values ---------------------------------------------------------
def split_halves(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ranking half and the curve half of ``n_rows`` rows: a seeded permutation cut in two,
    disjoint, together every row once; the curve half takes the odd row.

    Raises ``ValueError`` below :data:`MIN_ROWS` rows (two per half).

    Shape: ``(n_rows // 2,)`` and ``(n_rows - n_rows // 2,)`` int64, each sorted.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, Integral) or n_rows < MIN_ROWS:
        raise ValueError(
            f"n_rows must be an integer of at least {MIN_ROWS}: two rows per half, so that both "
            f"the ranking and the bootstrap over the curve half have rows to vary; got {n_rows!r}"
        )
    _check_integer(seed, "seed", 0)
    permutation = np.random.default_rng(seed).permutation(n_rows)
    cut = n_rows // 2
    return np.sort(permutation[:cut]), np.sort(permutation[cut:])


def removal_values(train_rows: pd.DataFrame, schema: TableSchema) -> dict[str, object]:
    """What replaces each input column when it is removed, from the training rows, in raw space
    (numerical columns, then categorical ones, in schema order):

    - a numerical column: the mean of its finite values as the schema parses them (NaN when it
      has none: removed, it becomes missing); a date column: the mean instant (``NaT`` when it
      has none), so that its parts (year, month, ...) are those of the mean date;
    - a categorical column: its most frequent non-missing label as the schema reads it (a tie
      goes to the first label in sorted order; ``None``, missing, when it has none).

    Raises ``TableError`` when ``train_rows`` lacks a feature column.
    """
    schema.require_columns(train_rows)
    removal: dict[str, object] = {}
    for name in schema.numerical_columns:
        spec = schema.column(name)
        if spec.kind is Kind.DATE:
            removal[name] = values.to_dates(train_rows[name], spec.date_format).mean()
        else:
            numbers = values.to_numbers(train_rows[name], spec.decimal)
            finite = numbers[np.isfinite(numbers)]
            removal[name] = float(finite.mean()) if finite.size else float("nan")
    for name in schema.categorical_columns:
        counts = Counter(label for label in values.to_labels(train_rows[name]) if label is not None)
        top = max(counts.values(), default=0)
        modes = (label for label, count in counts.items() if count == top)
        removal[name] = min(modes, default=None)  # the first in sorted order
    return removal


# -- losses ----------------------------------------------------------------------------------
def row_losses(model: nn.Module, preprocessor: Preprocessor, rows: pd.DataFrame) -> np.ndarray:
    """The model's loss on each of ``rows`` (raw values with the target), on the model's scale:
    :func:`~mrta.training.losses.task_loss` per row against
    :func:`~mrta.training.losses.model_target` (a regression target standardised by the
    preprocessor's training mean and standard deviation).

    Raises ``ValueError`` when ``rows`` lacks the target column, and ``TableError`` when a
    row has no target value or a feature column is absent.

    Shape: ``R`` rows -> ``(R,)`` float64.
    """
    schema = preprocessor.schema
    if schema.target not in rows.columns:
        raise ValueError(f"rows must hold the target column {schema.target!r} to be scored")
    encoded = preprocessor.transform(rows)
    assert encoded.target is not None  # the target column is there
    target = model_target(
        schema.task, encoded.target, preprocessor.target_mean, preprocessor.target_std
    )
    logits = predict_logits(model, encoded)
    return task_loss(schema.task, logits, target, reduction="none").double().numpy()


def deletion_losses(
    losses_of: LossesOf,
    rows: pd.DataFrame,
    removal: Mapping[str, object],
    order: Sequence[str],
) -> np.ndarray:
    """The per-row losses after removing the first ``k`` columns of ``order``, ``k = 0..n``:
    ``k = 0`` scores ``rows`` untouched; a removed column holds its ``removal`` value in every
    row, in this step and every later one. ``losses_of`` gets a new frame at every step.

    Raises ``ValueError`` when ``order`` is not a permutation of ``removal``'s columns (naming
    the missing, unknown or repeated ones) or ``losses_of`` does not give one loss per row.

    Shape: ``R`` rows -> ``(n + 1, R)`` float64, ``n = len(order)``.
    """
    _check_order(order, removal, "order")
    absent = [column for column in order if column not in rows.columns]
    if absent:
        raise ValueError(f"rows lack the column(s) {', '.join(map(repr, absent))} of order")
    curve = np.empty((len(order) + 1, len(rows)))
    current = rows
    for k in range(len(order) + 1):
        if k:
            current = current.copy()
            current[order[k - 1]] = removal[order[k - 1]]
        losses = np.asarray(losses_of(current), dtype=np.float64)
        if losses.shape != (len(rows),):
            raise ValueError(
                f"losses_of must give one loss per row, shape ({len(rows)},), got {losses.shape}"
            )
        curve[k] = losses
    return curve


def _check_order(order: Sequence[str], columns: Collection[str], name: str) -> None:
    """Raise ``ValueError`` unless ``order`` lists every one of ``columns`` exactly once."""
    counts = Counter(order)
    problems = []
    missing = [column for column in columns if column not in counts]
    unknown = [column for column in counts if column not in columns]
    repeated = [column for column, count in counts.items() if count > 1]
    for what, found in (("lacks", missing), ("has unknown", unknown), ("repeats", repeated)):
        if found:
            problems.append(f"{what} {', '.join(map(repr, found))}")
    if problems:
        raise ValueError(
            f"{name} must list every column exactly once, but it {'; '.join(problems)}"
        )


def random_orders(columns: Sequence[str], count: int, seed: int) -> list[tuple[str, ...]]:
    """``count`` orders of ``columns``, each a uniform random permutation from one seeded
    Generator (order ``i`` is the same whatever ``count`` is).

    Raises ``ValueError`` for a repeated column or a ``count`` below 1.
    """
    _check_integer(count, "count", 1)
    _check_integer(seed, "seed", 0)
    repeated = sorted(column for column, n in Counter(columns).items() if n > 1)
    if repeated:
        raise ValueError(f"columns must be distinct, but {', '.join(map(repr, repeated))} repeat")
    rng = np.random.default_rng(seed)
    return [tuple(columns[i] for i in rng.permutation(len(columns))) for _ in range(count)]


# -- areas and the bootstrap -----------------------------------------------------------------
def _weights(n: int) -> np.ndarray:
    """Trapezoid weights over ``x = k / n``; all zero below two columns (see
    :func:`faithfulness`).

    Shape: ``(n + 1,)``.
    """
    if n < 2:
        return np.zeros(n + 1)
    weights = np.full(n + 1, 1.0 / n)
    weights[[0, -1]] /= 2
    return weights


def deletion_area(curve: np.ndarray, reference: np.ndarray) -> float:
    """The area between a mean-loss ``curve`` and the ``reference`` (mean random) curve over
    ``x = k / n``, trapezoid rule: with curves that agree at ``k = 0`` and ``k = n``,
    ``(1/n) * sum over k = 1..n-1 of (curve_k - reference_k)``. Positive: removing the ranked
    columns first raises the loss more than the reference. 0 below two columns.

    Shape: ``(n + 1,)`` both -> a number.
    """
    curve = np.asarray(curve, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if curve.ndim != 1 or curve.size < 1:
        raise ValueError(f"curve must be 1-D with at least one point, got shape {curve.shape}")
    if reference.shape != curve.shape:
        raise ValueError(f"reference must have curve's shape {curve.shape}, got {reference.shape}")
    return float(_weights(curve.size - 1) @ (curve - reference))


def _bootstrap_areas(contributions: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Each method's area on ``resamples`` bootstrap resamples of the rows: multinomial row
    counts (drawn by one seeded Generator, in chunks of at most :data:`CHUNK_CELLS` counts) times
    the per-row contributions, over the number of rows.

    Shape: ``(M, R)`` -> ``(resamples, M)``.
    """
    n_rows = contributions.shape[1]
    rng = np.random.default_rng(seed)
    chance = np.full(n_rows, 1.0 / n_rows)
    chunk = max(1, CHUNK_CELLS // n_rows)
    areas = np.empty((resamples, len(contributions)))
    for start in range(0, resamples, chunk):
        counts = rng.multinomial(n_rows, chance, size=min(chunk, resamples - start))
        areas[start : start + len(counts)] = counts @ contributions.T / n_rows
    return areas


def _shaped(losses: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(losses, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array


def faithfulness(
    method_losses: Mapping[str, np.ndarray],
    random_losses: np.ndarray,
    *,
    orders: Mapping[str, Sequence[str]],
    random: Sequence[Sequence[str]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Faithfulness:
    """Each method's deletion area against the random orders, with a bootstrap interval over
    the rows (definitions in the module docstring), from :func:`deletion_losses` of the curve
    half: ``method_losses`` by method id, ``orders`` the order each was removed in,
    ``random_losses`` and ``random`` those of the random orders. The bootstrap is seeded by
    ``seed``; every method and the random orders share its resamples.

    Below two columns every area is 0 by construction: with none nothing is removed, and with
    one every order is the same order, so a ranking cannot differ from random; the result
    still comes, with zero areas and intervals and ``beats_random`` false.

    Raises ``ValueError`` for arrays of the wrong shape, orders that are not permutations of
    the same columns, a method called ``"random"``, ``resamples`` below 1 or ``level``
    outside (0, 1).

    Shape: method_losses ``(n + 1, R)`` each; random_losses ``(n_orders, n + 1, R)``.
    """
    _check_integer(resamples, "resamples", 1)
    _check_integer(seed, "seed", 0)
    if isinstance(level, bool) or not isinstance(level, Real) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if RANDOM in method_losses:
        raise ValueError(
            f"method_losses may not hold a method called {RANDOM!r}: the export keeps that "
            "key for the random orders"
        )
    if set(orders) != set(method_losses):
        raise ValueError(
            f"orders must give the order of each method of method_losses "
            f"({sorted(method_losses)}), got {sorted(orders)}"
        )
    random_losses = np.asarray(random_losses, dtype=np.float64)
    if random_losses.ndim != 3 or 0 in random_losses.shape:
        raise ValueError(
            "random_losses must have shape (n_orders, n + 1, R), none of them 0, "
            f"got {random_losses.shape}"
        )
    n_orders, n_points, n_rows = random_losses.shape
    if len(random) != n_orders:
        raise ValueError(
            f"random must hold {n_orders} orders (random_losses' first axis), got {len(random)}"
        )
    columns = tuple(random[0])
    if len(columns) != n_points - 1:
        raise ValueError(
            f"random[0] must list {n_points - 1} columns (random_losses has {n_points} "
            f"points per curve), got {len(columns)}"
        )
    for i, order in enumerate(random):
        _check_order(order, columns, f"random[{i}]")
    for name, order in orders.items():
        _check_order(order, columns, f"orders[{name!r}]")
    losses = {
        name: _shaped(array, (n_points, n_rows), f"method_losses[{name!r}]")
        for name, array in method_losses.items()
    }

    reference_rows = random_losses.mean(axis=0)  # (n + 1, R)
    reference = reference_rows.mean(axis=1)
    random_curves = random_losses.mean(axis=2)  # (n_orders, n + 1)
    random_areas = [deletion_area(curve, reference) for curve in random_curves]
    weights = _weights(n_points - 1)
    contributions = np.array([weights @ (array - reference_rows) for array in losses.values()])
    tail = 100 * (1 - level) / 2
    bounds = np.percentile(
        _bootstrap_areas(contributions.reshape(len(losses), n_rows), resamples, seed),
        [tail, 100 - tail],
        axis=0,
    )
    methods = {
        name: MethodFaithfulness(
            order=tuple(orders[name]),
            curve=_floats(array.mean(axis=1)),
            area=deletion_area(array.mean(axis=1), reference),
            low=float(bounds[0, i]),
            high=float(bounds[1, i]),
        )
        for i, (name, array) in enumerate(losses.items())
    }
    band = np.percentile(random_curves, SPREAD_PERCENTILES, axis=0)
    spread = np.percentile(random_areas, SPREAD_PERCENTILES)
    baseline = RandomBaseline(
        orders=tuple(tuple(order) for order in random),
        curve=_floats(reference),
        band_low=_floats(band[0]),
        band_high=_floats(band[1]),
        areas=_floats(random_areas),
        low=float(spread[0]),
        high=float(spread[1]),
    )
    return Faithfulness(
        methods=methods,
        random=baseline,
        rows=n_rows,
        columns=n_points - 1,
        resamples=resamples,
        level=float(level),
        seed=seed,
    )
