"""The Streamlit dashboard of MRTA Explorer: a thin face over :mod:`mrta` (widgets, session state
and calls into the package; no training or analysis logic). Start it with ``mrta dashboard`` or
``streamlit run mrta_dashboard/app.py``."""
