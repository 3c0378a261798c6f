"""What every command group shares: exit codes, argument readers, handlers, the engine."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import click

EXIT_FAILED = 1   # the execution did not succeed / replay diverged
EXIT_INVALID = 2  # bad input: definition, JSON, arguments


class Seconds(click.FloatRange):
    """A number of seconds at least `min`: click's FloatRange lets nan and inf through its bounds
    (nan compares false with both), and a lease or a poll interval of nan seconds is no interval."""

    name = "seconds"

    def __init__(self, min: float) -> None:  # noqa: A002 - FloatRange's own name for it
        super().__init__(min=min)

    def convert(self, value, param, ctx):
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{seconds} is not a finite number of seconds.", param, ctx)
        return seconds


class UserError(click.ClickException):
    exit_code = EXIT_INVALID


def read_json_arg(value: str | None, what: str, default: Any = None) -> Any:
    """'@file.json', '-' (stdin) or inline JSON text -> value; errors name line and column."""
    if value is None:
        return default
    if value == "-":
        text, where = sys.stdin.read(), "standard input"
    elif value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise UserError(f"cannot read {what} file {path}: {exc.strerror}") from None
        where = str(path)
    else:
        text, where = value, what
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON ({where}): {exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno}") from None


def read_definition(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise UserError(f"cannot read definition {path}: {exc.strerror}") from None


def load_handlers(specs: tuple[str, ...]) -> dict:
    """'pkg.module' -> its HANDLERS dict if it has one, else every public function by name (or by the
    names its @statelang.handler decorator gives);
    'pkg.module:NAME' -> that attribute (a dict, or a callable registered under NAME).

    The module is looked up in the current folder first (see `import_user_module`), then where
    Python finds installed modules."""
    handlers: dict = {}
    for spec in specs:
        mod_name, _, attr = spec.partition(":")
        module = import_user_module(mod_name)
        if attr:
            obj = getattr(module, attr, None)
            if obj is None:
                raise UserError(f"module {mod_name!r} has no attribute {attr!r}")
            handlers.update(obj if isinstance(obj, dict) else {attr: obj})
        elif isinstance(getattr(module, "HANDLERS", None), dict):
            handlers.update(module.HANDLERS)
        else:
            # functions marked @statelang.handler("Name", ...) go under those names, others under their own
            from statelang.runtime.resources import declared_names
            for name, obj in vars(module).items():
                if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__:
                    for key in declared_names(obj) or (name,):
                        handlers[key] = obj
    return handlers


def import_user_module(name: str) -> ModuleType:
    """Import the user's ``name`` (dotted) from the current folder without changing `sys.path`.

    The console script's `sys.path` does not hold the current folder, and putting it there would
    let a user's ``store.py`` or ``handlers/`` shadow what other code imports (and ours shadow
    theirs). So only the top-level package or module of ``name`` is looked up in the current
    folder and registered in `sys.modules` under its name, where ``import handlers`` in the user's
    own code finds that same module; the dotted rest is imported through that package's
    ``__path__``. A name not in the current folder is imported as usual (an installed package).
    A module of the user's that imports a sibling *module* by its bare name still needs that
    folder on PYTHONPATH; inside a package, relative imports work."""
    if not name or any(not part.isidentifier() for part in name.split(".")):
        raise UserError(f"cannot import handlers module {name!r}: not a dotted module name")
    top = name.partition(".")[0]
    cwd = str(Path.cwd())
    found = importlib.machinery.PathFinder.find_spec(top, [cwd])
    loaded = sys.modules.get(top)
    if found is not None and found.loader is not None and loaded is None:
        module = importlib.util.module_from_spec(found)
        sys.modules[top] = module
        try:
            found.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(top, None)
            if isinstance(exc, Exception):
                raise UserError(f"cannot import handlers module {name!r} from {found.origin}: "
                                f"{type(exc).__name__}: {exc}") from None
            raise
    elif found is not None and loaded is not None and not _same_place(loaded, found):
        raise UserError(f"cannot import handlers module {name!r}: {top!r} in {cwd} is shadowed by the "
                        f"{top!r} already imported from {_place(loaded)}")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if found is None and exc.name == top:
            raise UserError(f"cannot import handlers module {name!r}: no {top!r} in {cwd} "
                            "nor among the installed modules") from None
        raise UserError(f"cannot import handlers module {name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise UserError(f"cannot import handlers module {name!r}: {type(exc).__name__}: {exc}") from None


def _place(module: ModuleType) -> str:
    path = getattr(module, "__path__", None)
    return str(getattr(module, "__file__", None) or (list(path) if path is not None else "?"))


def _same_place(module: ModuleType, spec: importlib.machinery.ModuleSpec) -> bool:
    """Whether an imported module is the one ``spec`` found (so importing it again changes nothing)."""
    if spec.origin and getattr(module, "__file__", None):
        return Path(module.__file__).resolve() == Path(spec.origin).resolve()
    here = {str(Path(p).resolve()) for p in (spec.submodule_search_locations or [])}
    return bool(here) and here <= {str(Path(p).resolve()) for p in getattr(module, "__path__", [])}


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=_json_default, ensure_ascii=False))


def open_engine(db: str | None, handlers: tuple[str, ...] = (), clock: str = "real"):
    import statelang
    try:
        return statelang.Engine(db=db, handlers=load_handlers(handlers), clock=clock)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a store that cannot open is a user-facing error
        if type(exc).__name__ == "StoreError":
            raise UserError(str(exc)) from None   # it already names the database
        raise UserError(f"cannot open the database {db or 'default'}: {exc}") from None


DB_OPTION = click.option("--db", envvar="STATELANG_DB", default=None,
                         help="Database URL (sqlite:///file.db or postgresql+psycopg://...); "
                              "default ./.statelang/statelang.db")


def execution_or_fail(engine, arn: str) -> dict:
    row = engine.store.get_execution(arn)
    if row is None:
        raise UserError(f"no execution {arn} in this database")
    return row
