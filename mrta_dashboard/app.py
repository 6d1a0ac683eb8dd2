"""MRTA Explorer dashboard. Start it with ``streamlit run mrta_dashboard/app.py`` (or
``mrta dashboard``); ``python -m pip install -r requirements.txt`` installs ``mrta`` and
``mrta_dashboard``, so both import from anywhere."""

import streamlit as st

from mrta.pipelines.train_run import warm_up
from mrta_dashboard import control, jobs, keys, session
from mrta_dashboard.text import md

# An uncaught error shows a generic message, never a traceback with the server's paths: set here
# so that it holds whichever folder the server starts from (the pages catch what they expect).
st.set_option("client.showErrorDetails", "none")
st.set_page_config(page_title="MRTA Explorer", page_icon=":material/grid_on:", layout="wide")
session.ensure_table()
jobs.once("training imports", warm_up)  # so that the first click on Train does not wait for them
session.adopt_finished_job()  # a run trained in the background, whichever page is shown
session.adopt_opened_run()  # a run opened in the background, whichever page is shown
control.follow()  # a run trained here gets its control model in the background, then adopts it
pages = [  # paths relative to this script, as st.Page wants them
    st.Page("views/data.py", title="Data", icon=":material/table_chart:", default=True),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/open_run.py", title="Open run", icon=":material/folder_open:"),
    st.Page("views/explore.py", title="Explore", icon=":material/grid_view:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/export.py", title="Export", icon=":material/download:"),
]
st.navigation(pages).run()
with st.sidebar:  # after the page ran, so that it shows the page's latest choices
    loaded = session.table()
    st.caption(f"Table: **{md(loaded.name)}** · target: **{md(loaded.target or '—')}**")
    if caption := session.run_caption():
        st.caption(caption)
    if control.pending(session.get(keys.RUN)):
        st.caption("Control model: pending (training in the background).")
