"""The shape of the package: imports run one way, modules and functions stay readable."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from flows import ingest
from flows.settings import PROJECT_ROOT

FLOWS = PROJECT_ROOT / "flows"
# lower layers never import higher ones: the flow imports the stages, a stage imports the
# stages before it and the shared vocabulary (settings, records, tables, the Markdown walker)
LAYERS = [
    [
        "flows",
        "flows.picklable",
        "flows.urls",
        "flows.settings",
        "flows.records",
        "flows.causes",
        "flows.shards",
        "flows.tables",
        "flows.markdown",
        "flows.watch",
    ],
    ["flows.seeds"],
    ["flows.fetch"],
    ["flows.references", "flows.fulltext"],
    ["flows.entities"],
    ["flows.folding", "flows.mentions"],
    ["flows.assemble"],
    ["flows.load.db", "flows.load.migrate"],  # which database: used by the gate and the loader
    ["flows.quality"],
    ["flows.load"],
    ["flows.report"],
    ["flows.resources"],
    ["flows.cluster"],  # the Dask task runner and the resources a worker builds
    ["flows.tasks"],
    ["flows.batch"],
    ["flows.publish"],
    ["flows.run"],
    ["flows.ingest"],
    ["flows.check"],  # tomeflow check: seeds, assemble and the gate, loading nothing
    ["flows.deployment", "flows.automations", "flows.cli"],
]
MAX_MODULE_LINES = 480
MAX_FUNCTION_LINES = 62


def _layer(module: str) -> int:
    matches = [
        (len(name), i)
        for i, names in enumerate(LAYERS)
        for name in names
        if module == name or module.startswith(name + ".")
    ]
    assert matches, f"{module} is in no layer"
    return max(matches)[1]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(FLOWS.rglob("*.py")):
        name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        out.append((name.removesuffix(".__init__"), path))
    return out


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flows"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("flows")]
    return found


def test_imports_run_one_way() -> None:
    upward = [
        f"{module} imports {target}"
        for module, path in _modules()
        for target in _imports(path)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_modules_and_functions_stay_readable() -> None:
    too_long = []
    for module, path in _modules():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{module}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert too_long == []


def test_the_flow_body_fits_on_one_screen() -> None:
    source = inspect.getsource(ingest.ingest.fn)
    body = [line for line in source.splitlines() if line.strip()]
    assert len(body) <= 45
