"""The house rules, checked: one-way imports, small modules and functions, the demo kept apart.

The import contracts live in ``pyproject.toml`` and ``make lint`` runs them; these tests prove
the contracts bite (a copy of the tree with one wrong arrow fails them) and check the size
rules that no linter here enforces.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "ingest", "retrain", "dashboards", "driftwatch_sdk")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _copy_tree(dest: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )


def test_the_contracts_hold_on_the_tree() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        ("monitor/policy/rules.py", "import retrain.jobs", "The domain core imports no shell"),
        ("monitor/stats/univariate.py", "import monitor.detectors", "Stages import only upstream"),
        ("monitor/store/db.py", "import monitor.api.deps", "The domain core imports no shell"),
        ("retrain/jobs.py", "import kafka", "retrain/ knows no Kafka"),
        ("monitor/api/deps.py", "import monitor.demo.run", "Nothing but the demo"),
        ("driftwatch_sdk/encode.py", "import monitor.schemas", "The SDK imports nothing"),
        ("driftwatch_sdk/logger.py", "import pydantic", "The SDK imports nothing"),
    ],
)
def test_one_wrong_arrow_breaks_a_contract(
    tmp_path: Path, module: str, wrong_import: str, contract: str
) -> None:
    _copy_tree(tmp_path)
    target = tmp_path / module
    source = target.read_text()
    anchor = "from __future__ import annotations\n"
    assert anchor in source
    target.write_text(source.replace(anchor, f"{anchor}\n{wrong_import}  # wrong arrow\n", 1))
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken, result.stdout


#: Known debt, as a ratchet: each entry may shrink, never grow, and is removed once it fits.
#: New code gets no entry. (module or "module:function" -> its size when it was listed)
DEBT: dict[str, int] = {}  # all paid; a new entry needs a reason in review


#: Migration scripts are declarative lists of tables, frozen once released: not measured.
MIGRATIONS = ROOT / "monitor" / "store" / "migrations"


def _sizes() -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in _sources():
        if path.is_relative_to(MIGRATIONS):
            continue
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        sizes[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                key = f"{name}:{node.name}"
                sizes[key] = max(length, sizes.get(key, 0))
    return sizes


def test_no_module_over_400_lines_and_no_function_over_80() -> None:
    too_long = [
        f"{key}: {size} (limit {DEBT.get(key, 400 if ':' not in key else 80)})"
        for key, size in _sizes().items()
        if size > DEBT.get(key, 400 if ":" not in key else 80)
    ]
    assert not too_long, "\n".join(too_long)


def test_the_debt_list_only_shrinks() -> None:
    sizes = _sizes()
    paid = [key for key in DEBT if sizes.get(key, 0) <= (80 if ":" in key else 400)]
    assert not paid, f"now within the limit, remove from DEBT: {paid}"


def test_the_demo_lives_apart() -> None:
    mentions = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in _sources()
        if "demo" not in path.relative_to(ROOT).parts
        for line in path.read_text().splitlines()
        if re.search("demo", line, re.IGNORECASE)
    ]
    # only the line that registers ``driftwatch demo``
    assert len(mentions) == 1, mentions
    assert re.fullmatch(
        r'monitor/cli/__init__\.py: "demo": "monitor\.demo\.\w+:demo",', mentions[0]
    )


#: SQL constructs of SQLAlchemy: only ``monitor/store/`` builds statements.
SQL_CONSTRUCTS = frozenset({"select", "insert", "update", "delete", "text"})
STORE = ROOT / "monitor" / "store"
#: Modules outside the store allowed to build SQL (none; a new entry needs a reason in review).
SQL_ALLOWED: frozenset[str] = frozenset()


def sql_imports(source: str) -> list[str]:
    """The SQL constructs ``source`` imports from sqlalchemy (``from sqlalchemy[.x] import
    select``, or the module itself as ``import sqlalchemy``), wherever the import stands."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [a.name for a in node.names if a.name in SQL_CONSTRUCTS or a.name == "*"]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
    return found


def test_sql_imports_are_found_in_any_form() -> None:
    assert sql_imports("from sqlalchemy import Engine, select, text\n") == ["select", "text"]
    assert sql_imports("def f():\n    from sqlalchemy.sql import delete\n") == ["delete"]
    assert sql_imports("import sqlalchemy as sa\n") == ["sqlalchemy"]
    assert sql_imports("from sqlalchemy.orm import Session\nfrom pathlib import Path\n") == []


def test_only_the_store_builds_sql() -> None:
    outside = {
        str(path.relative_to(ROOT)): found
        for path in _sources()
        if not path.is_relative_to(STORE)
        and str(path.relative_to(ROOT)) not in SQL_ALLOWED
        and (found := sql_imports(path.read_text()))
    }
    assert not outside, f"SQL outside monitor/store/ (move it into a store module): {outside}"
