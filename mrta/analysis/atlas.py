"""The attention atlas: per layer, map and cohort, the mean and standard-deviation maps of every
head and the standard deviation of the head-averaged map, with the token names, the row counts,
and per-row measures averaged per cohort (each row's normalized entropy per head and rollout
importance, see :mod:`mrta.analysis.rollout`); and the comparison of cohorts cell by cell (see
:mod:`mrta.analysis.difference`), by default a cohort against the rest of the rows.

:func:`mrta.analysis.collect.collect_attention` fills one in a single pass over a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mrta.analysis import cohorts as cohorts_
from mrta.analysis.cohorts import ALL_ROWS, REST, CohortKey
from mrta.analysis.difference import (
    DEFAULT_Q,
    CohortMap,
    MapDifference,
    cohort_difference,
    complement,
)
from mrta.analysis.rollout import rollout_importance
from mrta.streams import MAP_IDS, MapKey


@dataclass(frozen=True, eq=False)
class AttentionAtlas:
    """Mean and standard-deviation maps per layer, map and cohort, with names and counts.

    Attributes:
        layer_names: display name of each layer.
        token_names: per layer, ``{"num": names, "cat": names}``.
        cohorts: cohort keys (first ``("all",)``); cohort ``i`` is index ``i`` below.
        cohort_labels: a readable label per cohort.
        counts: rows per cohort, ``(K,)`` int64.
        means, stds: per ``(layer, map_id)``, ``(K, H, Tq, Tk)`` float32; stds are population
            standard deviations over the cohort's rows.
        head_mean_stds: per ``(layer, map_id)``, ``(K, Tq, Tk)`` float32: the population standard
            deviation over the cohort's rows of each row's head-averaged map (its mean is the
            mean of ``means`` over heads).
        entropy: per ``(layer, map_id)``, ``(K, H)`` float32: each row's normalized entropy
            (mean over query rows), averaged over the cohort's rows.
        rollout_mean, rollout_std: ``(K, T)`` float32: each row's rollout importance of the
            tokens ``[num..., cat...]`` of the first layer, mean and std over the cohort's rows.
    """

    layer_names: tuple[str, ...]
    token_names: tuple[Mapping[str, tuple[str, ...]], ...]
    cohorts: tuple[CohortKey, ...]
    cohort_labels: tuple[str, ...]
    counts: np.ndarray
    means: Mapping[MapKey, np.ndarray]
    stds: Mapping[MapKey, np.ndarray]
    head_mean_stds: Mapping[MapKey, np.ndarray]
    entropy: Mapping[MapKey, np.ndarray]
    rollout_mean: np.ndarray
    rollout_std: np.ndarray

    @property
    def map_keys(self) -> list[MapKey]:
        """``(layer, map_id)`` of every map, by layer then in :data:`MAP_IDS` order."""
        return sorted(self.means, key=lambda key: (key[0], MAP_IDS.index(key[1])))

    @property
    def rollout_tokens(self) -> tuple[str, ...]:
        """The tokens of the rollout importances: numerical, then categorical."""
        names = self.token_names[0]
        return (*names.get("num", ()), *names.get("cat", ()))

    def names(self, layer: int, map_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(query names, key names)`` of a map."""
        query_stream, key_stream = map_id.split("_")
        names = self.token_names[layer]
        return tuple(names[query_stream]), tuple(names[key_stream])

    def index(self, cohort: CohortKey) -> int:
        """Position of ``cohort``; ``KeyError`` listing the cohorts when absent."""
        try:
            return self.cohorts.index(tuple(cohort))
        except ValueError:
            raise KeyError(
                f"no cohort {cohort!r} (no rows, or not collected); cohorts: {list(self.cohorts)}"
            ) from None

    def cohort_map(
        self,
        layer: int,
        map_id: str,
        cohort: CohortKey = ALL_ROWS,
        head: int | Literal["mean"] | None = None,
    ) -> CohortMap:
        """One cohort's map: all heads (``None``), one head, or the head mean (``"mean"``, with
        the standard deviation over rows of the head-averaged map, exact). A rest key
        ``("rest", *key)`` (:func:`~mrta.analysis.cohorts.complement`) gives :meth:`rest`.

        Shape: ``(H, Tq, Tk)`` for all heads, else ``(Tq, Tk)``.
        """
        if cohort and cohort[0] == REST:
            return self.rest(layer, map_id, cohorts_.complement(cohort), head=head)
        i = self.index(cohort)
        means = self.means[(layer, map_id)]
        heads = means.shape[1]
        count = int(self.counts[i])
        if head is None:
            return CohortMap(means[i], self.stds[(layer, map_id)][i], count)
        if head == "mean":
            return CohortMap(means[i].mean(axis=0), self.head_mean_stds[(layer, map_id)][i], count)
        if not isinstance(head, int | np.integer) or not 0 <= head < heads:
            raise ValueError(f"head must be None, 'mean' or a head in [0, {heads}), got {head!r}")
        return CohortMap(means[i][head], self.stds[(layer, map_id)][i][head], count)

    def rest(
        self,
        layer: int,
        map_id: str,
        cohort: CohortKey,
        within: CohortKey | None = None,
        head: int | Literal["mean"] | None = None,
    ) -> CohortMap:
        """The rows of ``within`` that are not in ``cohort``, from the two cohorts' moments by
        :func:`~mrta.analysis.difference.complement` (float64, on centred moments; see there
        for its precision). ``within`` defaults to the cohort that ``cohort`` is a part of
        (:func:`~mrta.analysis.cohorts.containing`: all rows, or its split's rows); any other
        must contain ``cohort``, which the caller guarantees. A rest of no rows has NaN maps.

        Shape: like :meth:`cohort_map`'s.
        """
        within = cohorts_.containing(cohort) if within is None else within
        part = self.cohort_map(layer, map_id, cohort, head)
        whole = self.cohort_map(layer, map_id, within, head)
        if part.count > whole.count:
            raise ValueError(
                f"cohort {cohort!r} has {part.count} rows, more than within {within!r}'s "
                f"{whole.count}: it is not part of within"
            )
        return complement(whole, part)

    def difference(
        self,
        layer: int,
        map_id: str,
        a: CohortKey,
        b: CohortKey,
        head: int | Literal["mean"] | None = None,
        *,
        q: float = DEFAULT_Q,
        disjoint: bool | None = None,
    ) -> MapDifference:
        """:func:`~mrta.analysis.difference.cohort_difference` of two cohorts of this atlas,
        with the false discovery rate ``q`` over the cells of the map in view (every head's
        with ``head=None``).

        ``disjoint``: whether the two share no row; ``None`` reads it from the keys
        (:func:`~mrta.analysis.cohorts.disjoint`). Cohorts that may share rows are shown without
        a test (:meth:`difference_from_rest` tests a cohort against the rows outside it; a rest
        key ``("rest", *a)`` as ``b`` does the same).

        Shape: the result's arrays like :meth:`cohort_map`'s.
        """
        return cohort_difference(
            self.cohort_map(layer, map_id, a, head),
            self.cohort_map(layer, map_id, b, head),
            q,
            disjoint=cohorts_.disjoint(a, b) if disjoint is None else disjoint,
        )

    def difference_from_rest(
        self,
        layer: int,
        map_id: str,
        cohort: CohortKey,
        within: CohortKey | None = None,
        head: int | Literal["mean"] | None = None,
        *,
        q: float = DEFAULT_Q,
    ) -> MapDifference:
        """``cohort`` against the rest of ``within`` (:meth:`rest`; by default the rest of the
        rows it is a part of): two disjoint samples, so tested as :meth:`difference` is; no test
        when either has fewer than 2 rows.

        Shape: the result's arrays like :meth:`cohort_map`'s.
        """
        return cohort_difference(
            self.cohort_map(layer, map_id, cohort, head),
            self.rest(layer, map_id, cohort, within, head),
            q,
        )

    def importance(self, cohort: CohortKey = ALL_ROWS) -> dict[str, float]:
        """Rollout importance per token: each row's rollout, averaged over the cohort.

        Each row is rolled out through its own maps and then averaged, rather than rolling out
        the mean maps: the rollout is a product of the layers' maps, and the mean of products
        differs from the product of means whenever layers co-vary across rows; the per-row
        average is what the predictions actually used. :meth:`mean_map_importance` gives the
        other for comparison.
        """
        values_ = self.rollout_mean[self.index(cohort)]
        return dict(zip(self.rollout_tokens, map(float, values_), strict=True))

    def mean_map_importance(self, cohort: CohortKey = ALL_ROWS) -> dict[str, float]:
        """Rollout importance per token of the cohort's mean maps (see :meth:`importance`)."""
        i = self.index(cohort)
        layers: list[dict[str, np.ndarray]] = [{} for _ in self.layer_names]
        for (layer, map_id), mean in self.means.items():
            layers[layer][map_id] = mean[i].astype(np.float64)
        names = self.token_names[0]
        result = rollout_importance(layers, len(names.get("num", ())), len(names.get("cat", ())))
        return dict(zip(self.rollout_tokens, map(float, result), strict=True))
