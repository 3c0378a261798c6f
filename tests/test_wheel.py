"""The built wheel, installed into a fresh venv, lives beside a user's own ``store.py``,
``handlers/`` and ``cli.py`` without shadowing them or being shadowed by them.

The first release installed eight top-level names (``store``, ``handlers``, ``cli``, ...): from a
folder holding a ``store.py``, ``Engine(db="sqlite:///x.db")`` failed, and after a SQL store
opened, Alembic's ``prepend_sys_path`` made the user's ``import handlers`` return ours. Now the
wheel has one import name, ``statelang``, and nothing changes ``sys.path``.

The wheel is built from a copy of the working tree (a build in place would leave ``build/`` and
``*.egg-info`` in the checkout), with pip's build isolation: the project's venv may hold a
setuptools older than pyproject's ``setuptools>=68`` (which has ``bdist_wheel`` built in). The
venv is plain (no ``--system-site-packages``): pip resolves the wheel's dependencies from the
configured package index, as a user's ``pip install statelang`` does. One venv serves the module.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".statelang",
                               ".pytest_cache", ".hypothesis", ".ruff_cache", "node_modules")
GREET = {"StartAt": "G", "States": {"G": {"Type": "Task", "End": True,
                                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:greet"}}}


def _run(args: list, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_SKIP)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", base / "dist", src], cwd=base)
    (found,) = (base / "dist").glob("statelang-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A plain venv with the wheel and its dependencies (from the package index) installed."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", where], cwd=where.parent)
    _run([where / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=where.parent)
    return where


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A user's project: its own ``store.py``, ``handlers/`` package and ``cli.py``."""
    (tmp_path / "store.py").write_text('WHO = "user store"\n')
    (tmp_path / "cli.py").write_text('WHO = "user cli"\n')
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "__init__.py").write_text(
        'WHO = "user handlers"\n\n'
        "def greet(event):\n"
        '    return {"greeting": "Hello, " + event["name"] + "!"}\n\n'
        'HANDLERS = {"greet": greet}\n')
    (tmp_path / "greet.asl.json").write_text(json.dumps(GREET))
    return tmp_path


def _env() -> dict:
    """The environment without this checkout on PYTHONPATH (pytest's ``pythonpath`` does not leak
    into children, but a developer's shell might)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_the_wheel_has_one_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n for n in names if n.endswith(".dist-info/RECORD"))
        record = [row[0] for row in csv.reader(io.StringIO(z.read(info).decode()))]
        top_level = z.read(info.replace("RECORD", "top_level.txt")).decode().split()
        entry_points = z.read(info.replace("RECORD", "entry_points.txt")).decode()
    tops = {path.split("/", 1)[0] for path in record if not path.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"statelang"}
    assert top_level == ["statelang"]
    assert "statelang = statelang.cli:main" in entry_points
    # what the store needs at run time ships with it: Alembic's ini, env and every revision
    for needed in ("statelang/store/alembic.ini", "statelang/store/migrations/env.py",
                   "statelang/store/migrations/script.py.mako"):
        assert needed in record
    revisions = [p for p in record if p.startswith("statelang/store/migrations/versions/") and p.endswith(".py")]
    repo_revisions = sorted((ROOT / "store" / "migrations" / "versions").glob("[0-9]*.py"))
    assert len(revisions) == len(repo_revisions) > 0


def test_cli_and_engine_beside_the_users_own_modules(venv, user_folder):
    bin_ = venv / "bin"
    env = _env()
    db = f"sqlite:///{user_folder / 'state' / 'x.db'}"

    ran = _run([bin_ / "statelang", "run", "greet.asl.json", "--input", '{"name": "Ada"}', "--handlers", "handlers"],
               cwd=user_folder, env=env)
    assert json.loads(ran.stdout) == {"greeting": "Hello, Ada!"}
    checked = _run([bin_ / "statelang", "validate", "greet.asl.json"], cwd=user_folder, env=env)
    assert "OK" in checked.stdout

    # a durable execution: started by the library beside the user's store.py, run by the worker
    # with the user's --handlers module, read back by the library
    start = f"""
import json, statelang
engine = statelang.Engine(db={db!r})
client = engine.client()
sm = client.create_state_machine(name="greet", definition=json.dumps({GREET!r}),
                                 roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
arn = client.start_execution(stateMachineArn=sm, name="one", input='{{"name": "Grace"}}')["executionArn"]
print(arn)
"""
    arn = _run([bin_ / "python", "-c", start], cwd=user_folder, env=env).stdout.strip().splitlines()[-1]
    _run([bin_ / "statelang", "worker", "--once", "--db", db, "--handlers", "handlers"], cwd=user_folder, env=env)
    check = f"""
import json, sys, statelang
import handlers
engine = statelang.Engine(db={db!r}, handlers=handlers.HANDLERS)
row = engine.client().describe_execution(executionArn={arn!r})
assert row["status"] == "SUCCEEDED", row
assert json.loads(row["output"]) == {{"greeting": "Hello, Grace!"}}, row["output"]
import store, cli
import handlers as again
import statelang.store, statelang.handlers
assert (store.WHO, cli.WHO, again.WHO) == ("user store", "user cli", "user handlers")
assert again is handlers
assert statelang.store.open_store is not None and statelang.handlers.__name__ == "statelang.handlers"
site = [p for p in sys.path if p.endswith("site-packages")]
assert sys.path.index("") < sys.path.index(site[0]), sys.path
# botocore is no dependency of the wheel: the client's errors keep boto3's shape without it
import importlib.util
assert importlib.util.find_spec("botocore") is None
client = engine.client()
try:
    client.describe_execution(executionArn={arn!r} + "-missing")
except client.exceptions.ExecutionDoesNotExist as exc:
    assert exc.response["Error"]["Code"] == "ExecutionDoesNotExist", exc.response
else:
    raise AssertionError("no ExecutionDoesNotExist")
print("ok")
"""
    assert _run([bin_ / "python", "-c", check], cwd=user_folder, env=env).stdout.strip() == "ok"


def test_migrations_run_from_the_installed_package(venv, user_folder):
    """Alembic by hand, with the installed ``alembic.ini``: a fresh database comes to head, and the
    user's modules stay theirs in a process that opened a store (no ``prepend_sys_path``)."""
    bin_ = venv / "bin"
    env = _env()
    ini = _run([bin_ / "python", "-c", "import pathlib, statelang.store as s; "
                "print(pathlib.Path(s.__file__).parent / 'alembic.ini')"], cwd=user_folder, env=env).stdout.strip()
    assert "site-packages" in ini and "prepend_sys_path" not in Path(ini).read_text()
    url = f"sqlite:///{user_folder / 'by-hand.db'}"
    _run([bin_ / "alembic", "-c", ini, "-x", f"url={url}", "upgrade", "head"], cwd=user_folder, env=env)
    heads = _run([bin_ / "alembic", "-c", ini, "heads"], cwd=user_folder, env=env).stdout.split()[0]
    current = _run([bin_ / "alembic", "-c", ini, "-x", f"url={url}", "current"], cwd=user_folder, env=env).stdout
    assert current.split()[0] == heads
    opened = f"""
import statelang.store
store = statelang.store.open_store({url!r})
store.close()
import handlers
assert handlers.WHO == "user handlers", handlers.__file__
print("ok")
"""
    assert _run([bin_ / "python", "-c", opened], cwd=user_folder, env=env).stdout.strip() == "ok"
