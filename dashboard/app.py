"""MRTA Explorer dashboard (entry point: ``streamlit run dashboard/app.py``)."""

import streamlit as st

st.set_page_config(page_title="MRTA Explorer", layout="wide")
st.title("MRTA Explorer")
st.write(
    "The PyTorch MultiResolutionTabularAttention layer and its attention recorder are ready "
    "(`import mrta`). The pages to upload a table, train a model and explore its attention "
    "head by head are being built: see the README for what works today."
)
