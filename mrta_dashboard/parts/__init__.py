"""Pieces of the dashboard's pages (the pages themselves are in :mod:`mrta_dashboard.views`)."""
