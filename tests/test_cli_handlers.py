"""`--handlers`: the user's module comes from the current folder, and `sys.path` stays as it was.

A folder of the user's may hold names that other code also imports (``store.py``, ``handlers/``);
the CLI must load the module it is given from there without putting the folder on `sys.path`,
so nothing else is shadowed (issue: a ``store.py`` in the folder broke ``Engine(db=...)``).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from statelang.cli.common import UserError, load_handlers


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch):
    """A folder with a package of a fresh, unique name (so sys.modules holds no earlier one)."""
    name = f"userpkg_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / name
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .helpers import shout\nHANDLERS = {'shout': shout}\n")
    (pkg / "helpers.py").write_text("def shout(event):\n    return str(event).upper()\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "more.py").write_text("def twice(event):\n    return event * 2\n\ndef _hidden(e):\n"
                                         "    return e\n")
    (tmp_path / f"{name}_flat.py").write_text("def one(event):\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    yield name, tmp_path
    for mod in [m for m in sys.modules if m == name or m.startswith((name + ".", name + "_flat"))]:
        del sys.modules[mod]


def test_a_package_in_the_current_folder_loads_without_touching_sys_path(user_folder):
    name, folder = user_folder
    before = list(sys.path)
    handlers = load_handlers((name,))
    assert handlers["shout"]("hi") == "HI"
    assert sys.path == before
    assert sys.modules[name].__file__ == str(folder / name / "__init__.py")
    # the user's own code importing the package afterwards gets the same module
    import importlib
    assert importlib.import_module(name) is sys.modules[name]


def test_dotted_names_and_attributes_and_single_modules(user_folder):
    name, _ = user_folder
    before = list(sys.path)
    assert sorted(load_handlers((f"{name}.sub.more",))) == ["twice"]
    assert list(load_handlers((f"{name}.sub.more:twice",))) == ["twice"]
    assert list(load_handlers((f"{name}_flat",))) == ["one"]
    assert sys.path == before


def test_a_module_that_is_nowhere_is_a_clear_user_error(user_folder):
    _, folder = user_folder
    with pytest.raises(UserError) as e:
        load_handlers(("no_such_module_anywhere",))
    assert "no 'no_such_module_anywhere' in" in e.value.message and str(folder) in e.value.message
    with pytest.raises(UserError, match="not a dotted module name"):
        load_handlers(("bad name",))


def test_a_failing_user_module_is_a_user_error_and_leaves_no_half_module(user_folder):
    _, folder = user_folder
    bad = f"broken_{uuid.uuid4().hex[:8]}"
    (folder / f"{bad}.py").write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(UserError, match="RuntimeError: boom at import"):
        load_handlers((bad,))
    assert bad not in sys.modules


def test_a_missing_submodule_names_itself(user_folder):
    name, _ = user_folder
    with pytest.raises(UserError, match=f"cannot import handlers module '{name}.nope'"):
        load_handlers((f"{name}.nope",))


def test_a_folder_module_shadowed_by_an_imported_one_is_refused(tmp_path, monkeypatch):
    """``json`` is imported already (the standard library's); a ``json.py`` of the user's cannot be
    loaded under that name without breaking everything that uses it: say so, do not guess."""
    (tmp_path / "json.py").write_text("def f(e):\n    return e\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="shadowed by the 'json' already imported"):
        load_handlers(("json",))


def test_installed_packages_still_load_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handlers = load_handlers(("statelang.handlers.ccs",))
    assert handlers and all(callable(f) for f in handlers.values())
