"""The layers hold (issue 35): each package imports only those below it (`.importlinter`), and
the simulator stands beside the pipeline. The check itself is checked: a contract turned upside
down must fail, so a broken linter cannot pass silently."""

from __future__ import annotations

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
