"""Two runs' maps compared on the same rows: which maps and tokens they share, the paired test
of each cell, and the divergence between the two maps.

- **Shared maps** (:func:`shared_maps`): tokens are matched by name within a stream (a
  column numerical in one run and categorical in the other matches nothing); a map is shared
  where both models have its layer and both its query and key streams keep a common token. The
  tokens of one run only are left out, and the common ones are compared *as recorded*: a row
  of a map that lost keys no longer sums to 1.
- **The paired test** (:func:`paired_difference`): both models are recorded on the same rows
  (:func:`mrta.analysis.paired.record_paired`), so each row gives one difference ``d = a − b``
  per cell, and the cell's mean difference is tested against 0 by the one-sample t on those
  differences (``t = mean(d) / (s_d / sqrt(n))``, ``n − 1`` degrees of freedom): the rows'
  own variation, common to both models, cancels, where two independent samples would keep it.
  The cells of the map in view are one family whose false discovery rate is held at ``q`` by
  the Benjamini–Yekutieli procedure, as in the difference maps
  (:mod:`mrta.analysis.difference`). Over thousands of paired rows even differences of a
  thousandth pass, so a cell also needs a difference of at least a tenth of the uniform weight
  (:data:`~mrta.analysis.stability.MIN_EFFECT`) to count as different.
- **Divergence**: the Jensen–Shannon divergence (base 2) of the two head-mean maps' rows,
  averaged over the query rows (:func:`mrta.analysis.stats.head_divergence`, as the checks
  measure a map against the untrained model's): 0 exactly for identical maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mrta.analysis.checks import rollout_agreement
from mrta.analysis.difference import DEFAULT_Q, MapDifference, t_tested
from mrta.analysis.importance import METHODS, ColumnImportances
from mrta.analysis.inputs import attention_layers
from mrta.analysis.recorder import StreamStats
from mrta.analysis.stability import MIN_EFFECT
from mrta.analysis.stats import head_divergence
from mrta.errors import counted
from mrta.streams import MAP_IDS

#: The two runs of a comparison, in the order of their maps' difference (``a − b``).
SIDES = ("a", "b")


@dataclass(frozen=True)
class SharedMap:
    """A map both models have, on the tokens both have.

    Attributes:
        queries, keys: the common tokens, in the first model's order.
        positions: per side (``"a"``, ``"b"``), the positions of ``queries`` and ``keys`` in
            that model's map.
        left_out: per side, the query and the key tokens of its map that the other lacks.
        heads: the number of heads where both models have as many (the per-head differences
            are then recorded too), else ``None``.
    """

    layer: int
    map_id: str
    queries: tuple[str, ...]
    keys: tuple[str, ...]
    positions: Mapping[str, tuple[np.ndarray, np.ndarray]]
    left_out: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
    heads: int | None

    @property
    def complete(self) -> bool:
        """Whether no key was left out on either side: each row then still sums to 1."""
        return not any(keys for _, keys in self.left_out.values())


def _tokens(model) -> dict[str, list[str]]:
    return {"num": list(model.numerical_tokens), "cat": list(model.categorical_tokens)}


def shared_maps(model_a, model_b) -> list[SharedMap]:
    """The maps of two row models that share a layer index, a map id and at least one query
    and one key token (matched by name within a stream), by layer then map id."""
    tokens = {"a": _tokens(model_a), "b": _tokens(model_b)}
    layers = {"a": attention_layers(model_a), "b": attention_layers(model_b)}
    shared = []
    for layer in range(min(len(layers["a"]), len(layers["b"]))):
        for map_id in MAP_IDS:
            if map_id not in model_a.map_ids or map_id not in model_b.map_ids:
                continue
            streams = map_id.split("_")
            common = [[t for t in tokens["a"][s] if t in tokens["b"][s]] for s in streams]
            if not all(common):
                continue
            positions, left_out = {}, {}
            for side in SIDES:
                own = [tokens[side][s] for s in streams]
                positions[side] = tuple(
                    np.array([names.index(t) for t in kept], dtype=np.int64)
                    for names, kept in zip(own, common, strict=True)
                )
                left_out[side] = tuple(
                    tuple(t for t in names if t not in kept)
                    for names, kept in zip(own, common, strict=True)
                )
            heads = {layers[side][layer].num_heads for side in SIDES}
            shared.append(
                SharedMap(
                    layer=layer,
                    map_id=map_id,
                    queries=tuple(common[0]),
                    keys=tuple(common[1]),
                    positions=positions,
                    left_out=left_out,
                    heads=heads.pop() if len(heads) == 1 else None,
                )
            )
    return shared


@dataclass(frozen=True)
class PairedDifference(MapDifference):
    """``a − b`` of two models' maps recorded on the same rows, each cell's mean per-row
    difference tested against 0 (see the module docstring); the fields as in
    :class:`~mrta.analysis.difference.MapDifference`, with ``df = n − 1``.

    Shape: like the maps compared.
    """

    min_effect: float = 0.0  # the least absolute difference that counts as one

    def caption(self) -> str:
        """One sentence: how many cells differ, how many of them chance may explain, and how."""
        if not self.tested:
            return self.note
        untestable = self.diff.size - self.cells_tested
        skipped = (
            f" ({untestable} have the same difference on every row and no test)"
            if untestable
            else ""
        )
        by = f" and by at least {self.min_effect:.3g}" if self.min_effect > 0 else ""
        return (
            f"{self.passing} of {self.cells_tested} cells tested{skipped} differ between the two "
            f"runs at a false discovery rate of q = {self.q:g}{by} (the paired t on each row's "
            "difference, both runs recorded on the same rows; Benjamini–Yekutieli, valid under "
            "any dependence between cells): at most "
            f"{self.q:g} of the cells shown as different are expected to be so by chance. Over "
            "thousands of paired rows even tiny differences pass the test, hence the least "
            "difference. It tests these two models on these rows, not whether retraining would "
            "differ."
        )


def paired_difference(
    differences: StreamStats, q: float = DEFAULT_Q, min_effect: float = 0.0
) -> PairedDifference:
    """Each cell's mean per-row difference tested against 0, from the moments of the per-row
    differences (``count``, and their sums and sums of squares about ``shift``); a cell is
    significant where it passes the test and its mean difference is at least `min_effect` in
    absolute value.

    With ``n`` rows, mean ``m`` and sample variance ``s² = std²·n/(n−1)``: ``se = s/sqrt(n)``,
    ``t = m/se``, ``p = 2·T_{n−1}(−|t|)``, and Benjamini–Yekutieli adjusted over the cells whose
    differences vary (a cell with the same difference on every row has no test). No test for
    fewer than 2 rows.

    Shape: the moments' arrays ``(..., Tq, Tk)``; the result's arrays like them.
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be a false discovery rate in (0, 1), got {q!r}")
    n = differences.count
    diff = differences.mean().double().numpy()
    nan = np.full(diff.shape, np.nan)
    if n < 2:
        return PairedDifference(
            diff,
            np.full(diff.shape, np.inf),
            nan,
            nan.copy(),
            nan.copy(),
            nan.copy(),
            np.zeros(diff.shape, dtype=bool),
            q,
            tested=False,
            cells_tested=0,
            note=f"No test: the runs were compared on {counted(n, 'row')}; a paired test needs 2.",
        )
    variance = differences.std().double().numpy() ** 2 / (n - 1)  # s²/n: of the mean
    tested = t_tested(diff, variance, float(n - 1), q, PairedDifference)
    large = np.abs(diff) >= min_effect
    return replace(tested, significant=tested.significant & large, min_effect=min_effect)


@dataclass(frozen=True)
class MapComparison:
    """One shared map of two runs recorded on the same rows.

    Attributes:
        shared: which map, on which tokens, and what was left out.
        mean_a, mean_b: each run's head-mean map over all the rows, on the common tokens.
        difference: ``mean_a − mean_b``, each cell tested (:func:`paired_difference`).
        head_difference: the same per head, where both have as many heads (``None`` else;
            a head index need not mean the same in two runs).
        divergence: the mean over query rows of the JS divergence (base 2) of ``mean_a`` and
            ``mean_b`` as recorded (rows that lost keys are compared as they are).

    Shape: ``mean_a``, ``mean_b``, ``difference``: ``(Tq, Tk)``; ``head_difference``:
    ``(H, Tq, Tk)``.
    """

    shared: SharedMap
    mean_a: np.ndarray
    mean_b: np.ndarray
    difference: PairedDifference
    head_difference: PairedDifference | None
    divergence: float

    @property
    def layer(self) -> int:
        return self.shared.layer

    @property
    def map_id(self) -> str:
        return self.shared.map_id


def compare_map(
    shared: SharedMap,
    mean_a: np.ndarray,
    mean_b: np.ndarray,
    differences: StreamStats,
    head_differences: StreamStats | None = None,
    q: float = DEFAULT_Q,
) -> MapComparison:
    """A :class:`MapComparison` from both runs' mean maps and the moments of the per-row
    differences (of the head means, and of each head where the heads line up). A cell counts
    as different where it passes the paired test and differs by at least
    :data:`~mrta.analysis.stability.MIN_EFFECT` of the uniform weight ``1/Tk`` (of the common
    keys), as a member's cell must to count in the stability analysis.

    Shape: ``mean_a``, ``mean_b``, ``differences``: ``(Tq, Tk)``; ``head_differences``:
    ``(H, Tq, Tk)``.
    """
    mean_a, mean_b = (np.asarray(m, dtype=np.float64) for m in (mean_a, mean_b))
    least = MIN_EFFECT / len(shared.keys)
    return MapComparison(
        shared=shared,
        mean_a=mean_a,
        mean_b=mean_b,
        difference=paired_difference(differences, q, least),
        head_difference=None
        if head_differences is None
        else paired_difference(head_differences, q, least),
        divergence=float(head_divergence(mean_a[None], mean_b[None])[0]),
    )


@dataclass(frozen=True)
class Comparison:
    """Two runs compared on the same rows.

    Attributes:
        runs: the two runs' names, ``a`` then ``b`` (differences are ``a − b``).
        rows: how many rows both were recorded on; ``sampled_from``: the rows they were a
            seeded sample of (``None`` when all were used).
        columns: per side (``"a"``, ``"b"``), the run's input columns.
        maps: every shared map (:func:`shared_maps`), by layer then map id.
        importance: per side, the column importances on the same rows (``importance_rows``
            of them); ``rank_correlation``: per method both have, Spearman's rho of the two
            runs' importances on the columns both have
            (:func:`mrta.analysis.checks.rollout_agreement`: rho, its p-value and how it was
            found, the column count; rho ``None`` under 3 columns or for a constant side).
        metrics: per side, the run's own metrics (each on its own test split).
        notes: what the reader must know: left-out columns, members not compared, ....
        q: the false discovery rate of every map's test.
    """

    runs: tuple[str, str]
    rows: int
    sampled_from: int | None
    columns: Mapping[str, tuple[str, ...]]
    maps: tuple[MapComparison, ...]
    importance: Mapping[str, ColumnImportances]
    importance_rows: int
    rank_correlation: Mapping[str, Mapping[str, Any]]
    metrics: Mapping[str, Mapping[str, Any]]
    notes: tuple[str, ...]
    q: float = DEFAULT_Q

    @property
    def left_out_columns(self) -> dict[str, tuple[str, ...]]:
        """Per side, the input columns the other run does not read."""
        a, b = self.columns["a"], self.columns["b"]
        return {"a": tuple(c for c in a if c not in b), "b": tuple(c for c in b if c not in a)}

    def map(self, layer: int, map_id: str) -> MapComparison:
        """The comparison of one shared map; ``KeyError`` naming the shared maps when absent."""
        for compared in self.maps:
            if (compared.layer, compared.map_id) == (layer, map_id):
                return compared
        shared = [(m.layer, m.map_id) for m in self.maps]
        raise KeyError(f"the runs share no map {(layer, map_id)}; they share {shared}")


def rank_correlations(a: ColumnImportances, b: ColumnImportances) -> dict[str, Mapping[str, Any]]:
    """Per method both have, :func:`~mrta.analysis.checks.rollout_agreement` of the two runs'
    importances: Spearman's rho on the columns both have, with its p-value."""
    return {
        method: rollout_agreement(a.methods[method].mean, b.methods[method].mean)
        for method in METHODS
        if method in a and method in b
    }
