"""Model and training defaults: one place, each with its reason, round-trippable through JSON.

Every field's ``why`` metadata is the one-line reason for its default (``mrta.defaults`` renders
them in the README's table). The defaults were chosen on validation splits of
the sample tables (``benchmarks/quality.py``), never on their test splits.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

from mrta.errors import positive_int

#: The largest seed: numpy's and scikit-learn's random states take 32-bit seeds.
MAX_SEED = 2**32 - 1
DEVICES = ("auto", "cpu", "cuda", "mps")


#: How a numerical column becomes its token: "linear" (``x*w + b``) or "plr" (periodic
#: features, a linear layer and ReLU: :class:`mrta.nn.periodic.PeriodicEmbeddings`).
NUMERICAL_EMBEDDINGS = ("linear", "plr")
#: Model settings added after runs were saved without them: such a run was trained with these.
EARLIER_MODEL_SETTINGS = {"numerical_embedding": "linear", "gate_penalty": 0.0}


@dataclass(frozen=True)
class ModelConfig:
    """Width, depth and regularisation of :class:`~mrta.nn.model.TabularAttentionModel` (and of
    :class:`~mrta.nn.set_model.SetAttentionModel`, which alone reads ``bind_rows``)."""

    d_token: int = field(
        default=32,
        metadata={
            "why": "a column's token needs few numbers; the first layer widens it to d_model"
        },
    )
    d_model: int = field(
        default=64,
        metadata={
            "why": "32 (with 16-wide tokens) was no better on validation and barely faster on CPU"
        },
    )
    num_layers: int = field(
        default=2,
        metadata={
            "why": "one layer scored the same on validation; two give the rollout layers to follow"
        },
    )
    num_heads: int = field(
        default=4,
        metadata={"why": "four 16-wide heads: several maps to compare per block (not tuned)"},
    )
    dropout: float = field(
        default=0.1,
        metadata={
            "why": "the reference's default; 0 and 0.2 were no better on validation. 0 from "
            "5,000 training rows scored higher on loans and diamonds and lower on both synthetic "
            "tables (benchmarks/quality.py)"
        },
    )
    numerical_embedding: str = field(
        default="plr",
        metadata={
            "why": "plr (periodic, linear, ReLU; Gorishniy et al. 2022) with the batch by the rows "
            "had the best mean validation rank of 8 candidates over 8 tables (3.375; linear "
            "tokens 3.5; benchmarks/quality.py); linear: x*w+b"
        },
    )
    plr_frequencies: int = field(
        default=48,
        metadata={"why": "plr only: the paper's k, its reference package's default"},
    )
    plr_sigma: float = field(
        default=0.1,
        metadata={
            "why": "plr only: the frequencies' initial scale; inputs are quantile-normal, so "
            "0.1 starts near linear (the paper tunes it between 0.01 and 100). 1, with twice the "
            "learning rate, scored lower on 7 of 8 validation tables, with or without dropout; "
            "higher only on diamonds (benchmarks/quality.py), so mrta train races it (no "
            "dropout) against these settings and keeps it where validation shows it better"
        },
    )
    gate_penalty: float = field(
        default=0.003,
        metadata={
            "why": "rows only: the training loss's price per open column gate (mrta.nn.gates); "
            "0: no gates. In the race as mrta train runs it (6 seeds, 8 tables), 0.003 tied with "
            "none on mean validation rank and won the tie on mean validation score by 0.0002 "
            "(benchmarks/gate_choice.py; with the earlier two-layer challenger it ranked first, "
            "1.375 against 1.625), and put synthetic_binary (six noise columns) ahead of "
            "gradient boosting; the race's challenger stays ungated"
        },
    )
    bind_rows: bool = field(
        default=True,
        metadata={
            "why": "sets only: a row's categories also join its numerical token, else no block "
            "can tie a row's numbers to its own categories (README, set resolution)"
        },
    )

    def __post_init__(self) -> None:
        for name in ("d_token", "d_model", "num_layers", "num_heads"):
            positive_int(getattr(self, name), name)
        if self.d_model % self.num_heads != 0:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={self.d_model} and "
                f"num_heads={self.num_heads}"
            )
        if isinstance(self.dropout, bool) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if self.numerical_embedding not in NUMERICAL_EMBEDDINGS:
            raise ValueError(
                f"numerical_embedding must be one of {list(NUMERICAL_EMBEDDINGS)}, got "
                f"{self.numerical_embedding!r}"
            )
        positive_int(self.plr_frequencies, "plr_frequencies")
        if isinstance(self.plr_sigma, bool) or not 0.0 < self.plr_sigma < math.inf:
            raise ValueError(f"plr_sigma must be a positive number, got {self.plr_sigma!r}")
        if isinstance(self.gate_penalty, bool) or not 0.0 <= self.gate_penalty < math.inf:
            raise ValueError(
                f"gate_penalty must be a number of at least 0, got {self.gate_penalty!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict` (a saved config); unknown keys are an error, a missing key takes
        its value from before it was a setting (:data:`EARLIER_MODEL_SETTINGS`), else the
        default."""
        return _from_dict(cls, {**EARLIER_MODEL_SETTINGS, **data})


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`~mrta.training.loop.fit` trains: budget, optimiser, schedule, stopping, device."""

    time_budget: float | None = field(
        default=30.0,
        metadata={"why": "the brief: a model worth looking at after half a minute on a 2-core CPU"},
    )
    max_epochs: int = field(
        default=200,
        metadata={"why": "a cap for small tables, which early stopping ends sooner anyway"},
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "why": "None: by the training rows, 256 below 5,000 and 128 from there, where 30 s "
            "gives few epochs: 128 scored higher on loans and synthetic_regression, within noise "
            "elsewhere (benchmarks/batch_scaling.py); a small table gets 4 smaller batches an epoch"
        },
    )
    learning_rate: float = field(
        default=1e-3,
        metadata={
            "why": "at a batch of 256; a batch left to the rows scales it by the square root of "
            "its size over 256. 2e-3 scored lower on 4 of 5 validation tables; 2e-3 from 5,000 "
            "rows on, higher on 2 of 4 and lower on loans and synthetic_binary "
            "(benchmarks/quality.py)"
        },
    )
    weight_decay: float = field(
        default=1e-4,
        metadata={
            "why": "a light pull on weight matrices; embeddings, norms, biases exempt (not tuned)"
        },
    )
    warmup_fraction: float = field(
        default=0.05,
        metadata={"why": "a short warm-up, then cosine decay to 0 at the budget's end (not tuned)"},
    )
    patience: int = field(
        default=12,
        metadata={
            "why": "epochs without a lower validation loss before stopping; the best weights stay"
        },
    )
    seed: int = field(
        default=0,
        metadata={"why": "the same seed gives the same initial weights, shuffles and dropout"},
    )
    device: str = field(
        default="auto",
        metadata={"why": "'auto' takes CUDA (bf16), then Apple MPS, then the CPU"},
    )
    threads: int | None = field(
        default=None,
        metadata={
            "why": "None: the physical cores; under a time budget, one thread if that steps faster"
        },
    )

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience"):
            positive_int(getattr(self, name), name)
        if self.batch_size is not None:
            positive_int(self.batch_size, "batch_size")
        if self.threads is not None:
            positive_int(self.threads, "threads")
        if self.time_budget is not None and not (
            isinstance(self.time_budget, int | float) and self.time_budget > 0
        ):
            raise ValueError(
                f"time_budget must be a positive number of seconds or None, "
                f"got {self.time_budget!r}"
            )
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be at least 0, got {self.weight_decay!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(
                f"seed must be a whole number from 0 to {MAX_SEED} (what numpy and scikit-learn "
                f"take), got {self.seed!r}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; unknown keys are an error, missing keys take the default."""
        return _from_dict(cls, data)


def default_threads() -> int:
    """The physical cores this process may run on (hyper-threads counted once).

    Linux: the CPUs of the process's affinity mask, divided by the threads per core that
    ``/proc/cpuinfo`` reports; elsewhere the logical count, which torch's own default matches.
    """
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
    per_core = 1
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            first_cpu = handle.read().split("\n\n")[0]
        info = {
            key.strip(): value.strip()
            for key, _, value in (line.partition(":") for line in first_cpu.splitlines())
        }
        per_core = max(1, int(info["siblings"]) // int(info["cpu cores"]))
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        pass  # no hyper-threading information: count every CPU
    return max(1, logical // per_core)


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    known = {spec.name for spec in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no setting(s) {', '.join(map(repr, unknown))}")
    return cls(**data)
