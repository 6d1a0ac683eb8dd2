"""The house's contract: imports point one way, from higher levels to lower ones, never back.

Every import counts: at module level, inside functions, under ``TYPE_CHECKING``; and no module is
imported by a string. The levels, lowest first, are :data:`LEVELS`; a module imports only from its
own level or below, and ``mrta.nn`` and ``mrta.data`` (level 1) not from each other.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mrta"
DASHBOARD = ROOT / "mrta_dashboard"

#: The level of each top-level name under ``mrta``, lowest first.
LEVELS = {
    "errors": 0,
    "config": 0,
    "task": 0,
    "streams": 0,
    "jsonable": 0,
    "csvfile": 0,
    "nn": 1,
    "data": 1,
    "training": 2,
    "runs": 3,
    "analysis": 4,
    "report": 5,
    "pipelines": 6,
    "cli": 7,
    "__main__": 7,
}
#: What the dashboard may use of ``mrta``: the faces it needs, never the model or the analysis.
DASHBOARD_USES = {
    "errors",
    "config",
    "task",
    "streams",
    "data",
    "training",
    "runs",
    "report",
    "pipelines",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every module name `path` imports, wherever the import stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def level(name: str) -> int | None:
    parts = name.split(".")
    return LEVELS.get(parts[1]) if parts[0] == "mrta" and len(parts) > 1 else None


def test_every_module_of_mrta_has_a_level():
    unplaced = [module_name(p) for p in sources(PACKAGE) if p.parent == PACKAGE]
    unplaced = [m for m in unplaced if m != "mrta" and level(m) is None]
    assert not unplaced, f"give these modules a level in LEVELS: {unplaced}"
    folders = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert all(name in LEVELS for name in folders), folders


@pytest.mark.parametrize("path", sources(PACKAGE), ids=lambda p: module_name(p))
def test_a_module_imports_only_from_its_level_or_below(path):
    name = module_name(path)
    own = level(name)
    if own is None:  # the package's own __init__: the facade over every level
        return
    upward = sorted(
        target for target in imported(path) if (found := level(target)) is not None and found > own
    )
    assert not upward, f"{name} (level {own}) imports from a higher level: {upward}"
    side = {"nn": "data", "data": "nn"}.get(name.split(".")[1])
    sideways = sorted(t for t in imported(path) if t.startswith(f"mrta.{side}"))
    assert not sideways, f"{name} imports {sideways}: nn and data are independent"
    facade = [t for t in imported(path) if t.startswith("mrta.") and t.count(".") == 1]
    facade = [t for t in facade if level(t) is None]
    assert not facade, f"{name} imports {facade} from the facade `mrta`: import the defining module"


@pytest.mark.parametrize("path", sources(PACKAGE), ids=lambda p: module_name(p))
def test_no_module_is_imported_by_a_string_and_only_report_imports_plotly(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"(import_module|__import__)\(", text), module_name(path)
    names = imported(path)
    assert not any(n.split(".")[0] == "streamlit" for n in names), "mrta never imports Streamlit"
    if not module_name(path).startswith("mrta.report"):
        assert not any(n.split(".")[0] == "plotly" for n in names), "plotly only in mrta.report"


def test_there_is_no_import_circle_among_mrta_modules():
    modules = {module_name(p): p for p in sources(PACKAGE)}
    edges = {}
    for name, path in modules.items():
        targets = set()
        for target in imported(path):
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        edges[name] = targets
    state: dict[str, int] = {}
    sys.setrecursionlimit(10_000)

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("path", sources(DASHBOARD), ids=lambda p: module_name(p))
def test_the_dashboard_is_a_thin_face(path):
    used = {t.split(".")[1] for t in imported(path) if t.startswith("mrta.") and t != "mrta."}
    assert used <= DASHBOARD_USES, f"{module_name(path)} reaches into {used - DASHBOARD_USES}"
    assert sum(1 for _ in path.open(encoding="utf-8")) <= 300, f"{path.name} is over 300 lines"


#: What writes a CSV without :func:`mrta.csvfile.write_csv`, which escapes formulas.
CSV_WRITING = re.compile(
    r"to_csv\(|\bcsv\.(writer|DictWriter)\b|from csv import[^\n]*\b(writer|DictWriter)\b"
)


@pytest.mark.parametrize(
    "path", [*sources(PACKAGE), *sources(DASHBOARD)], ids=lambda p: module_name(p)
)
def test_every_csv_is_written_by_the_one_escaping_writer(path):
    if path == PACKAGE / "csvfile.py":
        return
    text = path.read_text(encoding="utf-8")
    found = [m.group() for m in CSV_WRITING.finditer(text)]
    assert not found, f"{module_name(path)} writes CSV with {found}: use mrta.csvfile.write_csv"


def test_no_file_edits_sys_path():
    for folder in ("mrta", "mrta_dashboard", "tests", "benchmarks", "sample_data"):
        for path in sources(ROOT / folder):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"sys\.path\.(insert|append)", text), path


def test_import_mrta_loads_the_layer_without_pandas_or_the_analysis():
    code = (
        "import sys, mrta; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'sklearn', 'plotly', 'scipy') or m.startswith(('mrta.analysis', 'mrta.data'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
