"""What every command group shares: exit codes, argument readers, handlers, the engine."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

EXIT_FAILED = 1   # the execution did not succeed / replay diverged
EXIT_INVALID = 2  # bad input: definition, JSON, arguments


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
    """'pkg.module' -> its HANDLERS dict if it has one, else every public function by name;
    'pkg.module:NAME' -> that attribute (a dict, or a callable registered under NAME)."""
    handlers: dict = {}
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    for spec in specs:
        mod_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise UserError(f"cannot import handlers module {mod_name!r}: {exc}") from None
        if attr:
            obj = getattr(module, attr, None)
            if obj is None:
                raise UserError(f"module {mod_name!r} has no attribute {attr!r}")
            handlers.update(obj if isinstance(obj, dict) else {attr: obj})
        elif isinstance(getattr(module, "HANDLERS", None), dict):
            handlers.update(module.HANDLERS)
        else:
            for name, obj in vars(module).items():
                if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__:
                    handlers[name] = obj
    return handlers


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
