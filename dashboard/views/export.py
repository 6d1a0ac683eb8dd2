"""Export page: the maps, a tidy CSV, figures, the run directory and the HTML report."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from dashboard import session
from mrta.explain import report_figures, report_html, save_explanation, write_exports


def page() -> None:
    st.header("Export")
    run, explanation = session.get("run"), session.get("explanation")
    if run is None or explanation is None:
        st.info("Train a model on the Train page first; everything it produced can be saved here.")
        return
    stem = _stem(run)
    st.markdown(
        "**The report**: data summary, metrics beside the baselines, maps, head table "
        "and sanity checks, in one HTML file that opens offline."
    )
    st.download_button(
        "Download the HTML report",
        data=lambda: report_html(run, explanation, title=f"MRTA Explorer: {stem}"),
        file_name=f"{stem}-report.html",
        mime="text/html",
        key="e_report",
        type="primary",
    )
    st.markdown(
        "**The maps**: every layer, map, head and cohort with its labels "
        "(`.npz`, loads with `numpy.load(allow_pickle=False)`; labels also in `.json`), "
        "and a tidy CSV (layer, map, head, cohort, query, key, weight) of the whole-table means."
    )
    files = _exports(run, explanation)
    c1, c2, c3 = st.columns(3)
    c1.download_button("Maps (.npz)", files["maps.npz"], f"{stem}-maps.npz", key="e_npz")
    c2.download_button("Map labels (.json)", files["maps.json"], f"{stem}-maps.json", key="e_json")
    c3.download_button("Tidy CSV", files["maps.csv"], f"{stem}-maps.csv", "text/csv", key="e_csv")
    st.download_button(
        "Summary (.json): head table, importances, sanity checks",
        files["summary.json"],
        f"{stem}-summary.json",
        "application/json",
        key="e_summary",
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
        key="e_figure",
    )
    st.markdown(
        "**The run directory** (weights, schema, preprocessor, splits, metrics, history, and "
        "the analysis in `analysis/`), to reload with `mrta.runs.Run.load` or `mrta predict`."
    )
    with_data = st.checkbox("Include the table's rows in the run", value=False, key="e_rows")
    st.download_button(
        "Download the run (.zip)",
        data=lambda: _run_zip(run, explanation, with_data, stem),
        file_name=f"{stem}-run.zip",
        mime="application/zip",
        key="e_run",
    )


def _stem(run) -> str:
    loaded = session.table()
    base = Path(loaded.name).name.split(".")[0] if loaded else "run"
    return f"{base}-{run.schema.target}"


def _exports(run, explanation) -> dict[str, bytes]:
    """The export files, written once per run and kept for the session."""
    cached = st.session_state.get("e_files")
    if cached is not None and cached[0] is explanation:
        return cached[1]
    with tempfile.TemporaryDirectory() as folder:
        paths = write_exports(run, explanation, folder)
        files = {path.name: path.read_bytes() for path in paths}
    st.session_state["e_files"] = (explanation, files)
    return files


def _run_zip(run, explanation, with_data: bool, stem: str) -> bytes:
    """The run directory, with its analysis cached in ``analysis/``, as a zip."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        path = run.save(Path(folder) / "run", include_data=with_data)
        save_explanation(explanation, path, source=f"dashboard:{stem}")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(path.rglob("*")):
                archive.write(file, file.relative_to(path.parent))
    return buffer.getvalue()


if __name__ == "__main__":
    page()
