"""The house's layering, checked on the tree as it installs (one import name, `statelang`).

import-linter reads the contracts in `.importlinter`: inside the library language <- interpreter
<- runtime <- history <- api; across the tree the library <- store, templates <- eventbus <-
handlers <- workflows <- server <- cli, pytest plugin. Its graph library (grimp) walks the
package's folder, and the repository's top-level folders join `statelang` only when installed
(setuptools package-dir), so the check runs on the package installed into a scratch folder, from
a copy of the sources. Besides the contracts: no import circle between statelang's modules, at
any depth.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# Not copied: what a build leaves in the tree (setuptools builds in place and never empties build/lib,
# so a module moved away would still install from there) and what the package does not ship.
_NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                      ".hypothesis", "tests", "bench")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("installed")
    build = tmp_path_factory.mktemp("build")
    source = build / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(source)], capture_output=True, text=True, cwd=build,
                          env={**_env(), "PIP_NO_INDEX": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def _env() -> dict:
    import os
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_import_contracts_hold(installed):
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), str(ROOT / ".importlinter")], capture_output=True, text=True,
                          cwd=installed, env={**_env(), "PYTHONPATH": str(installed)})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_no_module_of_statelang_is_in_an_import_circle(installed):
    code = (
        "import grimp, json\n"
        "g = grimp.build_graph('statelang')\n"
        "edges = {m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}\n"
        "print(json.dumps(edges))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=installed,
                          env={**_env(), "PYTHONPATH": str(installed)})
    assert done.returncode == 0, done.stderr[-2000:]
    import json
    edges = json.loads(done.stdout)
    cycles = _cycles(edges)
    assert cycles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles[:10])


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found
