"""Export page: the maps, a tidy CSV, figures, the run directory and the HTML report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from mrta.pipelines.archive import RunOnOtherRows, zip_run
from mrta.pipelines.explain_sets import set_maps
from mrta.pipelines.explore import SetExplanation
from mrta.report.run_exports import write_exports
from mrta.report.run_report import report_figures, report_html
from mrta.report.set_exports import write_set_exports
from mrta_dashboard import control, keys, session
from mrta_dashboard.parts import stability, verdict


def page() -> None:
    found = verdict.run_page("Export", "everything it produced can be saved here")
    if found is None:
        return
    run, explanation = found
    if control.pending(run):
        st.caption(
            "What is downloaded now has no control model and no verdict beside it: download "
            "again once the control has landed."
        )
    stem = _stem(run)
    if isinstance(explanation, SetExplanation):  # one prediction per group
        _set_exports(run, explanation, stem)
        return
    st.markdown(
        "**The report**: the verdict first, then the data summary, the metrics beside the "
        "baselines in one table, every layer's maps, the importances, the checks beside their "
        "nulls and the head table, in one HTML file that opens offline (the same report as "
        "`mrta explain --report`)."
    )
    reported = stability.with_stability(run, explanation)
    if reported is not explanation:
        st.caption("With the stability across seeds computed on the Explore page.")
    elif run.seeds > 1:
        st.caption(
            "Compute the stability across seeds on the Explore page to have it in the report."
        )
    source = _source()  # the download runs on its own thread, without the session

    def report(explanation=reported) -> str:  # with the stability, where it was computed
        return report_html(run, explanation, table=source)

    st.download_button(
        "Download the HTML report",
        data=report,
        file_name=f"{stem}-report.html",
        mime="text/html",
        key=keys.EXPORT_REPORT,
        type="primary",
    )
    st.markdown(
        "**The maps**: every layer, map, head and cohort with its labels "
        "(`.npz`, loads with `numpy.load(allow_pickle=False)`; labels also in `.json`), "
        "and a tidy CSV (layer, map, head, cohort, query, key, weight) of the whole-table means."
    )
    files = _exports(run, reported)
    c1, c2, c3 = st.columns(3)
    c1.download_button("Maps (.npz)", files["maps.npz"], f"{stem}-maps.npz", key=keys.EXPORT_NPZ)
    c2.download_button(
        "Map labels (.json)", files["maps.json"], f"{stem}-maps.json", key=keys.EXPORT_JSON
    )
    c3.download_button(
        "Tidy CSV", files["maps.csv"], f"{stem}-maps.csv", "text/csv", key=keys.EXPORT_CSV
    )
    stable = "stability.csv" in files  # computed on the Explore page
    summaries = [
        (
            "Summary (.json): head table, importances, sanity checks"
            + (", stability across seeds" if stable else ""),
            "summary.json",
            "application/json",
            keys.EXPORT_SUMMARY,
        ),
        (
            "Stability across seeds (.csv): each map cell's mean and SD over the members",
            "stability.csv",
            "text/csv",
            keys.EXPORT_STABILITY,
        ),
    ]
    for label, name, mime, key in summaries[: 1 + stable]:
        st.download_button(label, files[name], f"{stem}-{name}", mime, key=key)
    if "importance.csv" in files:
        st.markdown(
            "**The importances** (tidy: method, column, stream, mean, standard error, rank) and "
            "**their deletion check** (per method the area above random orders, its interval "
            "and whether it beats random), from the checks on the test rows."
        )
        c1, c2 = st.columns(2)
        c1.download_button(
            "Importances (.csv)",
            files["importance.csv"],
            f"{stem}-importance.csv",
            "text/csv",
            key=keys.EXPORT_IMPORTANCE,
        )
        c2.download_button(
            "Faithfulness (.csv)",
            files["faithfulness.csv"],
            f"{stem}-faithfulness.csv",
            "text/csv",
            key=keys.EXPORT_FAITHFULNESS,
        )
    st.markdown("**One figure** as a standalone HTML page.")
    shown = report_figures(explanation)
    titles = [title for title, _ in shown]
    choice = st.selectbox("Figure", range(len(titles)), format_func=titles.__getitem__)
    st.download_button(
        "Download the figure",
        data=lambda: shown[choice][1].to_html(include_plotlyjs=True, full_html=True),
        file_name=f"{stem}-figure-{choice}.html",
        mime="text/html",
        key=keys.EXPORT_FIGURE,
    )
    st.markdown(
        "**The run directory** (weights, schema, preprocessor, splits, metrics, history, and "
        "the analysis in `analysis/`), to reload with `mrta.runs.run.Run.load` or `mrta predict`."
    )
    _run_download(run, explanation, stem)


def _source() -> str | None:
    """The file the run was opened from, else the table loaded (the report's title names it)."""
    origin, loaded = session.run_origin(), session.table()
    return origin.name if origin is not None else loaded.name if loaded else None


def _stem(run) -> str:
    base = Path(_source() or "run").name.split(".")[0]
    opened = session.run_origin() is not None
    return base.removesuffix("-run") if opened else f"{base}-{run.schema.target}"


def _run_download(run, explanation, stem: str) -> None:
    """The run directory as a zip, with its analysis when `explanation` is given, and the
    choice of including the table's rows (not offered for a run explored on rows other than
    those it was trained on)."""
    other_rows = isinstance(run, RunOnOtherRows)
    with_data = st.checkbox(
        "Include the table's rows in the run",
        value=False,
        key=keys.EXPORT_ROWS,
        disabled=other_rows,
        help="This run is explored on other rows than it was trained on." if other_rows else None,
    )
    st.download_button(
        "Download the run (.zip)",
        data=lambda: _run_zip(run, explanation, with_data, stem),
        file_name=f"{stem}-run.zip",
        mime="application/zip",
        key=keys.EXPORT_RUN,
    )


def _exports(run, explanation) -> dict[str, bytes]:
    """The export files, written once per state of the explanation and kept for the session
    (the checks and a control that lands later change it in place; the stability across seeds
    comes in a copy, :func:`stability.with_stability`)."""
    state = (
        explanation.atlas,
        explanation.importance,
        explanation.ablation,
        explanation.faithfulness,
        explanation.control,
        explanation.stability,
    )
    cached = st.session_state.get(keys.EXPORT_FILES)
    if cached is not None and all(a is b for a, b in zip(cached[0], state, strict=True)):
        return cached[1]
    with tempfile.TemporaryDirectory() as folder:
        paths = write_exports(run, explanation, folder)
        files = {path.name: path.read_bytes() for path in paths}
    st.session_state[keys.EXPORT_FILES] = (state, files)
    return files


def _run_zip(run, explanation, with_data: bool, stem: str) -> bytes:
    """The run directory, with its analysis cached in ``analysis/``, as a zip that the Open
    run page (and :func:`mrta.pipelines.archive.open_zip`) reads back."""
    return zip_run(run, explanation, include_data=with_data, folder=f"{stem}-run")


# -- a set run (one prediction per group) ---------------------------------------------------------
def _set_exports(run, explanation: SetExplanation, stem: str) -> None:
    """The set analysis as CSV, one set's maps, and the run directory."""
    st.markdown(
        f"**The sets and their rows** (one prediction per group of `{explanation.group_by}`): "
        "`sets.csv`, one line per analysed set (its size, prediction and truth); `rows.csv`, "
        "each row's attention measures beside its values; `summary.csv`, the mean rollout "
        "measure of the rows by each column's levels or quantile bins, with the rows and sets "
        "counted and the standard error clustered by set (`se_clustered_by_set`)."
    )
    files = _set_files(explanation)
    c1, c2, c3 = st.columns(3)
    c1.download_button(
        "Sets (.csv)", files["sets.csv"], f"{stem}-sets.csv", "text/csv", key=keys.EXPORT_SETS_CSV
    )
    c2.download_button(
        "Rows and measures (.csv)",
        files["rows.csv"],
        f"{stem}-rows.csv",
        "text/csv",
        key=keys.EXPORT_ROWS_CSV,
    )
    c3.download_button(
        "Summary (.csv)",
        files["summary.csv"],
        f"{stem}-summary.csv",
        "text/csv",
        key=keys.EXPORT_SUMMARY_CSV,
    )
    st.markdown(
        "**One set's maps**: every layer, map and head, rows × rows (`.npz`, arrays "
        "`layer{L}_{map}` of heads × rows × rows), and a tidy CSV (layer, map, head, query, "
        "key, weight) with the rows labelled by the order-by column."
    )
    names = explanation.sets[explanation.group_by].astype(str).tolist()
    chosen = session.get(keys.CHOSEN_SET)  # the set shown on the Explore page
    index = names.index(chosen) if chosen in names else 0
    key = st.selectbox("Set", names, index=index, key=keys.EXPORT_SET)
    if run.frame is None:
        st.info("This run holds no rows, so its sets' maps cannot be recorded.")
    else:
        maps = session.run_cached(keys.SET_MAPS, run, key)  # else recorded on the click
        c1, c2 = st.columns(2)
        for column, name, mime in ((c1, "set_maps.npz", None), (c2, "set_maps.csv", "text/csv")):
            column.download_button(
                f"Maps of set {key} (.{name.split('.')[1]})",
                data=lambda name=name, maps=maps: _set_map_file(run, explanation, key, maps, name),
                file_name=f"{stem}-{key}-{name.replace('_', '-')}",
                mime=mime,
                key=keys.export_set_maps(name),
            )
    st.markdown(
        "**The run directory** (weights, schema, preprocessor, splits with their groups, "
        "metrics, history), to reload with `mrta.runs.run.Run.load` or `mrta predict`. Opening it "
        "records its sets' attention again."
    )
    _run_download(run, None, stem)


def _set_files(explanation: SetExplanation) -> dict[str, bytes]:
    """sets.csv, rows.csv and summary.csv, written once per analysis and kept for the session."""
    cached = st.session_state.get(keys.EXPORT_SET_FILES)
    if cached is not None and cached[0] is explanation:
        return cached[1]
    with tempfile.TemporaryDirectory() as folder:
        files = {path.name: path.read_bytes() for path in write_set_exports(explanation, folder)}
    st.session_state[keys.EXPORT_SET_FILES] = (explanation, files)
    return files


def _set_map_file(run, explanation: SetExplanation, key: str, maps, name: str) -> bytes:
    """One file of the set `key`'s map exports (runs on the download's own thread: no
    session state here)."""
    maps = maps if maps is not None else set_maps(run, run.frame, key)
    with tempfile.TemporaryDirectory() as folder:
        write_set_exports(explanation, folder, maps)
        return (Path(folder) / name).read_bytes()


if __name__ == "__main__":
    page()
