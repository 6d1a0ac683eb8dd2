"""The verdict first, at the top of the Explore, Export and Train pages: whether the run's
attention is worth reading (the model against chance and against its control, by a paired
bootstrap of the test split), in the words of :func:`mrta.report.run_report.verdict_banner`;
"verdict pending" while the control model trains."""

from __future__ import annotations

from types import SimpleNamespace

import streamlit as st

from mrta.pipelines.explain import run_verdict
from mrta.pipelines.explore import SetExplanation
from mrta.report.run_report import verdict_banner
from mrta.task import Task
from mrta_dashboard import control, keys, session

PENDING = "Verdict pending: the control model is still training."
PENDING_WHY = (
    "Until it lands, nothing on this page is compared with a model trained on shuffled labels, "
    "so do not read the maps as what the model learned yet. So far:"
)


def judged(run, explanation):
    """What holds the run's verdict (``.verdict``, ``.verdict_note``): the explanation of a run
    on rows; for a run on sets, its verdict scored here, once per run and control."""
    if not isinstance(explanation, SetExplanation):
        return explanation
    verdict, note = session.run_cache(
        keys.VERDICTS, run, run.control is not None, lambda: run_verdict(run)
    )
    return SimpleNamespace(verdict=verdict, verdict_note=note)


def banner(run, explanation) -> bool:
    """The verdict's headline and reasons: a success line when the attention is worth reading,
    a warning when it is not, when there is no verdict, or while the control is pending (with
    its progress). Returns whether it is worth reading."""
    judgement = judged(run, explanation)
    if control.pending(run):
        verdict = judgement.verdict
        so_far = list(verdict.reasons) if verdict is not None else [judgement.verdict_note]
        st.warning(_text(PENDING, so_far, PENDING_WHY), icon=":material/hourglass_top:")
        control.watch()
        return False
    worth, headline, reasons = verdict_banner(run, judgement)
    if worth:
        st.success(_text(headline, reasons), icon=":material/verified:")
    else:
        st.warning(_text(headline, reasons), icon=":material/warning:")
    return worth


def _text(headline: str, reasons: list[str], lead: str = "") -> str:
    """The headline in bold, `lead` below it, then the reasons as a list."""
    bullets = [f"- {reason}" for reason in reasons if reason]
    return "\n".join([f"**{headline}**", "", *([lead, ""] if lead else []), *bullets])


def baselines(run) -> None:
    """Gradient boosting beside the model, as information (the verdict does not use it)."""
    key, label = ("r2", "R²") if run.schema.task == Task.REGRESSION else ("roc_auc", "ROC AUC")
    model, hgb = run.metrics["model"].get(key), run.metrics.get("hgb", {}).get(key)
    if not isinstance(model, float) or not isinstance(hgb, float):
        return
    side = "above" if model > hgb else "below" if model < hgb else "level with"
    st.info(
        f"For information: the attention model's test {label} is {model:.3f}, {side} gradient "
        f"boosting's {hgb:.3f}. The verdict above compares with chance and with the control, "
        "not with gradient boosting.",
        icon=":material/info:",
    )


def run_page(title: str, then: str):
    """A page about the session's run: its header, then the run and its explanation with the
    verdict shown first; ``None`` when there is no run yet (see :func:`session.require_run`)."""
    st.header(title)
    found = session.require_run(then)
    if found is not None:
        banner(*found)
    return found
