"""The layers hold (issue 35): each package imports only those below it (`.importlinter`), and
the simulator stands beside the pipeline. The check itself is checked: a contract turned upside
down must fail, so a broken linter cannot pass silently."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _lint(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, str(config)], cwd=ROOT, capture_output=True, text=True)


def test_no_upward_imports_and_no_circles():
    res = _lint(ROOT / ".importlinter")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 kept, 0 broken" in res.stdout


def test_a_contract_turned_upside_down_is_broken(tmp_path):
    text = (ROOT / ".importlinter").read_text(encoding="utf-8")
    upside_down = text.replace("    opmetrics.measures\n", "").replace(
        "    opmetrics.methodology\n", "    opmetrics.methodology\n    opmetrics.measures\n"
    )
    assert upside_down != text
    config = tmp_path / "upside-down.ini"
    config.write_text(upside_down, encoding="utf-8")
    res = _lint(config)
    assert res.returncode != 0
    assert "opmetrics.measures is not allowed to import opmetrics.methodology" in res.stdout


SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE)\s|store\.(rows|con|ibis)\b|\.execute\(")


def sql_in(folder: Path) -> list[str]:
    """Lines of a shell package that talk to the database themselves instead of through a layer."""
    return [
        f"{p.relative_to(folder)}:{i}: {line.strip()}"
        for p in sorted(folder.rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if SQL.search(line)
    ]


def test_the_command_line_holds_no_sql(tmp_path):
    assert sql_in(ROOT / "src" / "opmetrics" / "cli") == []
    # The check finds a query where there is one.
    planted = tmp_path / "cli"
    planted.mkdir()
    (planted / "bad.py").write_text('rows = store.rows("SELECT 1")\n', encoding="utf-8")
    assert len(sql_in(planted)) == 1


def import_circles(package: str) -> list[tuple[str, str]]:
    """Pairs of modules each of which reaches the other through imports (at any depth, imports
    inside functions included): the circles the layers contract cannot see inside one layer."""
    import grimp

    graph = grimp.build_graph(package, cache_dir=None)
    return sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if a < b and graph.chain_exists(importer=b, imported=a)
    )


def test_no_import_circles_inside_the_package(tmp_path, monkeypatch):
    assert import_circles("opmetrics") == []
    # The check finds a circle where there is one, even through a function-level import.
    pkg = tmp_path / "circled"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "a.py").write_text("from circled import b\n", encoding="utf-8")
    (pkg / "b.py").write_text("def f():\n    from circled import a\n", encoding="utf-8")
    (pkg / "c.py").write_text("from circled import a\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_circles("circled") == [("circled.a", "circled.b")]


ENGINE_BRANCH = re.compile(r"\.engine\s*[!=]=|[!=]=\s*\"(duckdb|pyspark)\"|\"(duckdb|pyspark)\"\s*[!=]=")


def test_measures_never_branch_on_the_engine(tmp_path):
    """What differs between DuckDB and Spark lives in engine/backends.py; a measure asks its
    Scope's backend, never the engine's name."""
    hits = [
        f"{p.name}:{i}"
        for p in sorted((ROOT / "src" / "opmetrics" / "measures").glob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if ENGINE_BRANCH.search(line)
    ]
    assert hits == []
    assert ENGINE_BRANCH.search('        if self.engine == "pyspark":')
    assert ENGINE_BRANCH.search('    outer = "duckdb" != name')


MEASURE_SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE)\s|store\.rows\b|\.(execute|executemany|sql|raw_sql)\("
)


def test_measures_talk_to_the_store_through_ibis_and_engine_only():
    """The measures build Ibis expressions; what they need the DuckDB store to run (day state,
    folds, result tables, month totals, the context inputs) is in engine/cubes.py,
    engine/results.py and engine/context.py."""
    files = {
        p.name
        for p in (ROOT / "src" / "opmetrics" / "measures").glob("*.py")
        if any(MEASURE_SQL.search(line) for line in p.read_text(encoding="utf-8").splitlines())
    }
    assert files == set()
    assert MEASURE_SQL.search('    n = store.con.execute("SELECT 1")')
