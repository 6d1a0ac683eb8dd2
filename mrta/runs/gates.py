"""What a run's column gates (:mod:`mrta.nn.gates`) let its models read: each column's gate in
evaluation, per seed member, beside the label-shuffled control's gates as the null.

A gate of 0 leaves its column an empty token: the model reads nothing of that column, and
attention to its token carries no row's value. A closed gate says that the column did not lower
the training loss by the price of an open gate; it does not say the column is unrelated to the
target (a column whose information another column already carries may close too). The control
trains with the same price on shuffled labels, where no column should pay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mrta.runs.run import Run


@dataclass(frozen=True)
class GateReport:
    """The gates of a run's models (in evaluation, in [0, 1]).

    Attributes:
        penalty: the training loss's price per open gate (``ModelConfig.gate_penalty``).
        columns: the model's tokens, numerical first.
        members: per seed member (member 0 first), each column's gate.
        control: the label-shuffled control's gates; ``None`` without a control.
    """

    penalty: float
    columns: tuple[str, ...]
    members: tuple[tuple[float, ...], ...]
    control: tuple[float, ...] | None

    def closed(self) -> list[str]:
        """The columns closed (gate 0) in every member."""
        return [c for j, c in enumerate(self.columns) if all(m[j] == 0 for m in self.members)]

    def open(self) -> list[str]:
        """The columns fully open (gate 1) in every member."""
        return [c for j, c in enumerate(self.columns) if all(m[j] == 1 for m in self.members)]

    def partly(self) -> dict[str, float]:
        """The other columns, with their mean gate over the members."""
        settled = {*self.closed(), *self.open()}
        return {
            c: sum(m[j] for m in self.members) / len(self.members)
            for j, c in enumerate(self.columns)
            if c not in settled
        }

    def sentence(self) -> str:
        """What the gates let the model read, and what they cannot tell."""
        n, closed, partly = len(self.columns), self.closed(), self.partly()
        every = " in every seed member" if len(self.members) > 1 else ""
        text = f"Column gates (a price of {self.penalty:g} per open column in the training loss): "
        if closed:
            text += (
                f"closed{every} for {', '.join(closed)} ({len(closed)} of {n}): the model reads "
                "nothing of these columns, and attention to their tokens carries no row's value."
            )
        else:
            text += f"no column is closed{every}."
        if partly:
            mean = " (mean over the members)" if len(self.members) > 1 else ""
            gates = ", ".join(f"{c} {g:.2f}" for c, g in partly.items())
            text += f" Partly open{mean}: {gates}."
        text += (
            " A closed gate says a column did not lower the training loss by that price, not "
            "that it is unrelated to the target."
        )
        if self.control is not None:
            shut = sum(g == 0 for g in self.control)
            text += f" The label-shuffled control, at the same price, closed {shut} of {n}."
        return text

    def to_dict(self) -> dict[str, Any]:
        """``summary.json``'s ``gates``."""
        return {
            "penalty": self.penalty,
            "columns": list(self.columns),
            "members": [list(m) for m in self.members],
            "control": None if self.control is None else list(self.control),
            "closed": self.closed(),
            "partly": self.partly(),
        }


def gate_report(run: Run) -> GateReport | None:
    """The run's gates; ``None`` for a run whose models have none (set runs, runs saved
    before the gates, ``gate_penalty=0``)."""
    gates = [member.model.column_gates() for member in run.members]
    if gates[0] is None:
        return None
    control = None
    if run.control is not None:
        control_gates = run.control.model.column_gates()
        control = None if control_gates is None else tuple(control_gates.values())
    return GateReport(
        penalty=run.model_config.gate_penalty,
        columns=tuple(gates[0]),
        members=tuple(tuple(g.values()) for g in gates),
        control=control,
    )
