"""Is a map a property of the data or of one random seed? The same model trained with N initial
seeds ("members"), recorded on the same rows, compared cell by cell, head by head and by the
columns' importances.

- **Head matching**: a head index means nothing across seeds (attention is symmetric in its
  heads), so each member's heads are matched to member 0's by the assignment of least total
  divergence between their mean maps (``scipy.optimize.linear_sum_assignment`` on the mean
  Jensen–Shannon divergence over query rows): ``heads[h]`` is the member's head matched to head
  ``h`` of member 0.
- **Cells**: per cell, the mean and standard deviation across members of the head-mean map (and
  of the matched heads). A cell is **unstable** where at least one member puts it significantly
  above the uniform weight ``1/Tk`` and another significantly below: a z-test of each member's
  mean against uniform with the standard error over rows, Benjamini–Yekutieli adjusted over all
  members and cells at ``q``, and at least :data:`MIN_EFFECT` of the uniform weight away from it.
  Cells near uniform, whose sign flips by noise (or, over many rows, by amounts too small to
  matter), are not unstable.
- **Importances**: the agreement of the members' column rankings, Kendall's W (Kendall and Babington
  Smith 1939) with the correction for ties, ``W = 12 S / (m^2 (n^3 - n) - m sum_j T_j)``,
  ``T_j = sum (t^3 - t)`` over the tie groups of member ``j``; its expectation when the rankings
  are unrelated is ``1/m``, and its p-value is from permutations (each member's scores shuffled
  across columns independently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.difference import benjamini_yekutieli
from mrta.analysis.stats import js_divergence

DEFAULT_Q = 0.05  # the false discovery rate of the unstable cells, as in the difference maps
# How far from the uniform weight u a member's cell must be (a share of u) for its side to
# count: over 10,000 rows a cell 0.2505 against u = 0.25 is significant, but no feature.
MIN_EFFECT = 0.1
PERMUTATIONS = 2_000  # of Kendall's W: a p-value resolved to 1/2001
#: How each importance method is named in a sentence about its agreement across members.
IMPORTANCE_WORDS = {
    "permutation": "permutation importances",
    "rollout": "rolled-out attention shares",
    "value_norm": "value-norm shares",
    "relevance": "gradient-weighted relevances",
}


def match_heads(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The head of ``other`` matched to each head of ``reference``: the one-to-one assignment
    of least total mean Jensen–Shannon divergence between their maps.

    Shape: ``(H, Tq, Tk)`` both -> ``(H,)`` int, a permutation of ``range(H)``.
    """
    if reference.shape != other.shape:
        raise ValueError(
            f"maps of shapes {reference.shape} and {other.shape} cannot be matched: the members "
            "must share their architecture and columns"
        )
    cost = js_divergence(reference[:, None], other[None, :]).mean(axis=-1)  # (H, H)
    rows, cols = optimize.linear_sum_assignment(cost)
    assert np.array_equal(rows, np.arange(len(rows)))
    return cols


def kendalls_w(scores: np.ndarray) -> float:
    """Kendall's W of ``m`` members' scores of ``n`` columns (higher is more important; tied
    scores take their average rank), corrected for ties; NaN when every member ties every
    column (nothing is ranked).

    Shape: ``(m, n)`` with ``m >= 2`` and ``n >= 2``.
    """
    ranks = _ranks(scores)
    return float(_w(ranks[None], _ties(ranks))[0])


@dataclass(frozen=True)
class Concordance:
    """Kendall's W of the members' rankings, beside what unrelated rankings give."""

    w: float
    null: float  # 1/m: W's expectation when the rankings are unrelated
    p_value: float  # of W at least as large, by shuffling each member's scores
    members: int
    columns: int

    def sentence(self, what: str) -> str:
        """A plain sentence on what is stable."""
        if not np.isfinite(self.w):
            return f"The {what} ties every column in every member: there is no ranking to compare."
        agree = (
            "agree on the ranking of the columns more than unrelated rankings would"
            if self.p_value <= 0.05
            else "do not agree on the ranking of the columns more than unrelated rankings would"
        )
        return (
            f"The {self.members} members' {what} {agree} (Kendall's W {self.w:.2f} over "
            f"{self.columns} columns, against {self.null:.2f} expected by chance; permutation "
            f"p = {self.p_value:.3g})."
        )


def concordance(
    scores: np.ndarray, *, permutations: int = PERMUTATIONS, seed: int = 0
) -> Concordance:
    """:func:`kendalls_w` with its permutation p-value: the share of ``permutations`` shuffles
    (each member's scores permuted across columns, independently, keeping its ties) whose W is
    at least the observed one, counting the observed as one of them.

    Shape: ``(m, n)``.
    """
    ranks = _ranks(scores)
    ties = _ties(ranks)
    observed = float(_w(ranks[None], ties)[0])
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(ranks, (permutations, *ranks.shape)), axis=2)
    null = _w(shuffled, ties)
    p_value = float((1 + np.sum(null >= observed - 1e-12)) / (1 + permutations))
    m, n = ranks.shape
    return Concordance(observed, 1 / m, p_value if np.isfinite(observed) else 1.0, m, n)


def _ranks(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 2 or scores.shape[1] < 2:
        raise ValueError(
            f"scores must be (members, columns) with at least 2 of each, got {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite: a member without a score cannot be ranked")
    return stats.rankdata(-scores, axis=1)  # rank 1: the most important


def _ties(ranks: np.ndarray) -> float:
    """``sum_j T_j``, ``T_j = sum (t^3 - t)`` over the tie groups of member ``j``."""
    total = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        total += float(np.sum(counts.astype(np.float64) ** 3 - counts))
    return total


def _w(ranks: np.ndarray, ties: float) -> np.ndarray:
    """W of each of a stack of rank matrices that share their ties. Shape: ``(B, m, n)`` ->
    ``(B,)``."""
    _, m, n = ranks.shape
    sums = ranks.sum(axis=1)  # (B, n)
    s = np.sum((sums - sums.mean(axis=1, keepdims=True)) ** 2, axis=1)
    denominator = m**2 * (n**3 - n) - m * ties
    if denominator <= 0:
        return np.full(len(ranks), np.nan)
    return 12 * s / denominator


@dataclass(frozen=True)
class CellStability:
    """One map's cells across members.

    Shape: ``mean``, ``sd``, ``unstable``: ``(Tq, Tk)``; ``matched_mean``, ``matched_sd``:
    ``(H, Tq, Tk)``, member 0's heads with each member's matched head; ``heads``: ``(N, H)``,
    row ``i`` the head of member ``i`` matched to each head of member 0 (row 0 the identity);
    ``member_means``: ``(N, Tq, Tk)``, each member's head-mean map.
    """

    mean: np.ndarray
    sd: np.ndarray
    unstable: np.ndarray
    matched_mean: np.ndarray
    matched_sd: np.ndarray
    heads: np.ndarray
    member_means: np.ndarray

    @property
    def mean_cell_sd(self) -> float:
        return float(self.sd.mean())

    @property
    def unstable_cells(self) -> int:
        return int(self.unstable.sum())


def cell_stability(
    heads: np.ndarray,
    head_mean_ses: np.ndarray,
    *,
    q: float = DEFAULT_Q,
    min_effect: float = MIN_EFFECT,
) -> CellStability:
    """The stability of one map across ``N >= 2`` members recorded on the same rows.

    Args:
        heads: each member's mean map per head (mean over the rows).
        head_mean_ses: each member's standard error over the rows of its head-mean map.
        q: the false discovery rate of the per-member tests against the uniform weight.
        min_effect: the least distance from the uniform weight, as a share of it, for a
            member's side of it to count.

    Shape: ``heads``: ``(N, H, Tq, Tk)``; ``head_mean_ses``: ``(N, Tq, Tk)``.
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    members = len(heads)
    if members < 2:
        raise ValueError("stability needs at least 2 members")
    head_mean = heads.mean(axis=1)  # (N, Tq, Tk)
    uniform = 1.0 / head_mean.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (head_mean - uniform) / head_mean_ses
    z = np.where(head_mean_ses > 0, z, np.where(head_mean == uniform, 0.0, np.inf))
    p = 2 * stats.norm.sf(np.abs(z))
    large = np.abs(head_mean - uniform) >= min_effect * uniform
    significant = (benjamini_yekutieli(p) <= q) & large  # (N, Tq, Tk)
    above = (significant & (head_mean > uniform)).any(axis=0)
    below = (significant & (head_mean < uniform)).any(axis=0)
    matching = np.stack([match_heads(heads[0], heads[i]) for i in range(members)])  # (N, H)
    matched = np.stack([heads[i][matching[i]] for i in range(members)])  # (N, H, Tq, Tk)
    return CellStability(
        mean=head_mean.mean(axis=0),
        sd=head_mean.std(axis=0, ddof=1),
        unstable=above & below,
        matched_mean=matched.mean(axis=0),
        matched_sd=matched.std(axis=0, ddof=1),
        heads=matching,
        member_means=head_mean,
    )


def importance_agreement(
    rankings: Sequence[Mapping[str, float]], *, permutations: int = PERMUTATIONS, seed: int = 0
) -> Concordance:
    """:func:`concordance` of each member's importance per column (``{column: score}``, the
    same columns in every member)."""
    columns = list(rankings[0])
    if any(set(ranking) != set(columns) for ranking in rankings):
        raise ValueError("every member must score the same columns")
    scores = np.array([[ranking[c] for c in columns] for ranking in rankings])
    return concordance(scores, permutations=permutations, seed=seed)


@dataclass(frozen=True)
class MapStability:
    """:func:`cell_stability` of one layer's map, on the members' ``ALL_ROWS`` cohort."""

    layer: int
    map_id: str
    cells: CellStability


def map_stabilities(
    atlases: Sequence[AttentionAtlas], *, q: float = DEFAULT_Q
) -> list[MapStability]:
    """Every map's stability across the members' atlases, recorded on the same rows (the
    standard error of a member's head-mean cell: its standard deviation over rows over the
    square root of the rows)."""
    first = atlases[0]
    if any(atlas.map_keys != first.map_keys for atlas in atlases):
        raise ValueError("the members' atlases must hold the same maps")
    found = []
    for layer, map_id in first.map_keys:
        heads, ses = [], []
        for atlas in atlases:
            cohort = atlas.cohort_map(layer, map_id, ALL_ROWS)
            mean = atlas.cohort_map(layer, map_id, ALL_ROWS, head="mean")
            heads.append(cohort.mean)
            ses.append(mean.std / np.sqrt(max(mean.count, 1)))
        cells = cell_stability(np.stack(heads), np.stack(ses), q=q)
        found.append(MapStability(layer, map_id, cells))
    return found


@dataclass(frozen=True)
class SeedStability:
    """What survives another seed in a run of N seed members: every map's
    :func:`map_stabilities` and, per importance method, the members' :func:`importance_agreement`
    (empty, with `note` saying why, where the run's test rows were not at hand)."""

    members: int
    rows: int  # the rows every member was recorded on
    maps: list[MapStability]
    agreement: dict[str, Concordance]
    importance_rows: int  # the test rows the importances were computed on (0: none)
    note: str | None = None

    def summary(self) -> dict[str, Any]:
        """The ``"stability"`` entry of ``summary.json`` (:func:`stability_summary`)."""
        return {**stability_summary(self.maps, self.agreement), "seeds": self.members}

    def sentence(self, method: str) -> str:
        """The plain sentence on the members' agreement on `method`'s column ranking."""
        return self.agreement[method].sentence(IMPORTANCE_WORDS.get(method, method))

    def map(self, layer: int, map_id: str) -> MapStability:
        """The stability of one layer's map."""
        for found in self.maps:
            if (found.layer, found.map_id) == (layer, map_id):
                return found
        raise KeyError(f"no map {map_id!r} in layer {layer}")


def stability_summary(
    maps: Sequence[MapStability], agreement: Mapping[str, Concordance]
) -> dict[str, Any]:
    """The ``"stability"`` entry of ``summary.json``: the members, Kendall's W per importance
    method, per map the mean standard deviation of its cells across members and its unstable
    cells, and the head matching (``heads[h]``: the member's head matched to head ``h`` of
    member 0)."""
    members = len(maps[0].cells.heads) if maps else 0
    return {
        "seeds": members,
        "importance_agreement": {method: c.w for method, c in agreement.items()},
        "maps": [
            {
                "layer": m.layer,
                "map_id": m.map_id,
                "mean_cell_sd": m.cells.mean_cell_sd,
                "unstable_cells": m.cells.unstable_cells,
            }
            for m in maps
        ],
        "head_matching": [
            {"layer": m.layer, "map_id": m.map_id, "member": i, "heads": m.cells.heads[i].tolist()}
            for m in maps
            for i in range(1, members)
        ],
    }
