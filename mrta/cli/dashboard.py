"""``mrta dashboard``: ``streamlit run`` on the dashboard's app, from any folder.

Streamlit reads ``.streamlit/config.toml`` only from the folder it is started in, so the command
passes :data:`STREAMLIT_SETTINGS` as options itself; a test checks that the repository's
``.streamlit/config.toml`` (read by ``streamlit run`` by hand) holds the same settings.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mrta.cli.common import subcommand
from mrta.pipelines.archive import RUNS_DIR_ENV

DASHBOARD_PACKAGE = "mrta_dashboard"

#: The server settings of every dashboard: ``.streamlit/config.toml`` holds the same.
STREAMLIT_SETTINGS: dict[str, bool | int | str] = {
    "server.maxUploadSize": 200,  # MB: Streamlit refuses bigger uploads before our reader
    "server.enableXsrfProtection": True,
    "server.enableCORS": True,
    "server.headless": True,
    "browser.gatherUsageStats": False,
    "client.toolbarMode": "minimal",
    "client.showErrorDetails": "none",  # no traceback with the server's paths in the browser
}


def add_dashboard(commands: argparse._SubParsersAction) -> None:
    p = subcommand(
        commands,
        "dashboard",
        help="start the Streamlit dashboard",
        description=f"Start the dashboard (streamlit run {DASHBOARD_PACKAGE}/app.py, with the "
        "settings of .streamlit/config.toml, from any folder); other arguments go to "
        "streamlit, e.g. --server.port 8502.",
    )
    p.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="the folder whose saved runs the Open run page lists (every session sees them); "
        f"default: ${RUNS_DIR_ENV} when set, else ./runs when it exists",
    )
    p.set_defaults(handler=run_dashboard, passes_on_arguments=True)


def run_dashboard(args: argparse.Namespace) -> int:
    app = dashboard_app()
    if importlib.util.find_spec("streamlit") is None:
        raise ModuleNotFoundError("streamlit is not installed: pip install -r requirements.txt")
    if args.runs_dir is not None:
        folder = Path(args.runs_dir).expanduser()
        if not folder.is_dir():
            raise NotADirectoryError(f"the runs folder {args.runs_dir} is not a folder")
        os.environ[RUNS_DIR_ENV] = str(folder.resolve())  # streamlit inherits it
    command = [sys.executable, "-m", "streamlit", "run", str(app)]
    command += [*streamlit_options(args.extra), *args.extra]
    return subprocess.run(command, check=False).returncode


def dashboard_app() -> Path:
    """The dashboard's ``app.py``, found without importing the dashboard or Streamlit: in the
    package Python would import, else beside the ``mrta`` package (a checkout)."""
    spec = importlib.util.find_spec(DASHBOARD_PACKAGE)
    folders = [Path(f) for f in (spec.submodule_search_locations or ())] if spec else []
    folders.append(Path(__file__).resolve().parents[2] / DASHBOARD_PACKAGE)
    for folder in folders:
        if (folder / "app.py").is_file():
            return (folder / "app.py").resolve()
    raise FileNotFoundError(
        f"the dashboard app is not at {folders[-1] / 'app.py'}: run from a checkout of the "
        "repository, or install it with pip install -e ."
    )


def streamlit_options(extra: Sequence[str]) -> list[str]:
    """:data:`STREAMLIT_SETTINGS` as ``streamlit run`` options, less those that `extra` (the
    user's own options to streamlit) sets."""
    given = set()
    for arg in extra:
        if arg == "--":  # the app's own arguments follow
            break
        if arg.startswith("--"):
            given.add(arg[2:].split("=", 1)[0])
    options = []
    for key, value in STREAMLIT_SETTINGS.items():
        if key not in given:
            options += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return options
