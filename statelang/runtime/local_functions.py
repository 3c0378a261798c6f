"""A Python Lambda function of the user's project, called in-process as a task handler.

`PythonFunction(code_dir, "app.lambda_handler", config)` imports ``app.py`` from ``code_dir`` the
first time it is called and calls ``lambda_handler(event, context)`` with a `LambdaContext`.

Two things Lambda gives a function that a plain import does not:

* its code folder is on the import path (``/var/task``), so ``import utils`` finds a sibling
  module. The handler's module is imported under a name of its own (two functions may both have
  an ``app.py``) with the code folder first on `sys.path` *only while that import runs*, under a
  lock; a sibling imported then stays in `sys.modules` under its bare name, so two functions with
  different siblings of one name need distinct names.
* its Environment variables (and Lambda's own, ``AWS_LAMBDA_FUNCTION_NAME`` ...). `os.environ` is
  the process's, so a function with variables is imported and called holding a lock that sets
  them and puts the previous values back: such calls run one at a time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from statelang.language.errors import StatelangError
from statelang.runtime.lambda_context import FunctionConfig, lambda_context

_IMPORT_LOCK = threading.RLock()
_ENV_LOCK = threading.RLock()


class FunctionLoadError(StatelangError):
    """A function's code cannot be found or imported; the message names the function and file."""


class PythonFunction:
    """A callable handler ``(event, task_context) -> result`` running a Python Lambda locally."""

    def __init__(self, code_dir: str | os.PathLike, handler: str, config: FunctionConfig, region: str = "us-east-1"):
        self.code_dir = Path(code_dir)
        self.handler = handler
        self.config = config
        self.region = region
        self._fn: Callable | None = None
        module, _, attr = handler.rpartition(".")
        if not module or not attr:
            raise FunctionLoadError(f"function {config.name}: Handler {handler!r} is not 'module.function'")
        self.module_path = module.replace(".", "/")
        self.attr = attr

    def __repr__(self) -> str:
        return f"<PythonFunction {self.config.name} {self.code_dir / self.module_path}.py:{self.attr}>"

    def environment(self) -> dict[str, str]:
        c = self.config
        return {"AWS_LAMBDA_FUNCTION_NAME": c.name, "AWS_LAMBDA_FUNCTION_VERSION": c.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_mb), "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region, "_HANDLER": self.handler, **c.environment}

    def load(self) -> Callable:
        """Import the handler (once); raises FunctionLoadError naming what is missing."""
        if self._fn is not None:
            return self._fn
        path = self.code_dir / f"{self.module_path}.py"
        if not path.is_file():
            package = self.code_dir / self.module_path / "__init__.py"
            if not package.is_file():
                raise FunctionLoadError(f"function {self.config.name}: no {path} for Handler {self.handler!r}")
            path = package
        unique = "statelang_lambda_" + re.sub(r"\W", "_", f"{self.config.name}_{self.module_path}")
        with _IMPORT_LOCK, self._env(), _on_path(self.code_dir):
            module = sys.modules.get(unique)
            if module is None:
                spec = importlib.util.spec_from_file_location(unique, path)
                if spec is None or spec.loader is None:
                    raise FunctionLoadError(f"function {self.config.name}: cannot import {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[unique] = module
                try:
                    spec.loader.exec_module(module)
                except Exception as exc:
                    sys.modules.pop(unique, None)
                    raise FunctionLoadError(f"function {self.config.name}: importing {path} failed: "
                                            f"{type(exc).__name__}: {exc}") from exc
        fn = getattr(module, self.attr, None)
        if not callable(fn):
            raise FunctionLoadError(f"function {self.config.name}: {path} has no function {self.attr!r}")
        self._fn = fn
        return fn

    def __call__(self, event: Any, task: Any = None) -> Any:
        """`task`: the engine's TaskContext, which Resources has given this function's Lambda context
        (see TaskContext.lambda_context); called directly, a Lambda context is made here."""
        fn = self.load()
        context = task if getattr(task, "lambda_context", None) is not None else lambda_context(self.config, task)
        with self._env():
            return fn(event, context)

    @contextmanager
    def _env(self) -> Iterator[None]:
        values = self.environment()
        with _ENV_LOCK:
            before = {k: os.environ.get(k) for k in values}
            os.environ.update(values)
            try:
                yield
            finally:
                for k, v in before.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


@contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    entry = str(folder.resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass
