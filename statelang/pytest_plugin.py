"""statelang's pytest plugin, loaded through the ``pytest11`` entry point in any project that
installs statelang.

Fixtures:

* ``sfn_engine`` — an in-memory Engine on the virtual clock, with the local AWS services (its
  ``engine.resources.services``) and statelang's event bus for ``events:putEvents``; closed after
  the test.
* ``sfn_client`` — its boto3-shaped ``stepfunctions`` client.
* ``statelang_template`` — a factory: ``statelang_template("template.yaml", Stage="qa")`` loads a
  SAM/CloudFormation/CDK template onto a fresh virtual-clock engine and returns a `TemplateUnderTest`
  (``.run(machine, input)``, ``.services``, ``.engine``, ``.template``).
* ``sfn_golden`` — ``sfn_golden("order-happy", execution)`` compares the execution's history with
  ``golden/order-happy.history.json`` beside the test file; ``--statelang-update-golden`` rewrites it.

Helpers (plain functions): `states_entered`, `assert_path`, `state_input`, `state_output`,
`mock_test_cases` (a MockConfigFile's test cases, for ``pytest.mark.parametrize``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HTTP_DATE = re.compile(r"\b[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
_ISO_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
_RUN_SUFFIX = re.compile(r"(:execution:[^:\"]+:[^:\"]+)-[0-9a-f]{8}\b")


def pytest_addoption(parser) -> None:
    group = parser.getgroup("statelang")
    group.addoption("--statelang-update-golden", action="store_true", default=False,
                    help="Rewrite statelang golden history files instead of comparing against them.")


# -- helpers -------------------------------------------------------------------------------------

def _entered(events: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for e in events:
        if e["type"].endswith("StateEntered"):
            out.append((e["stateEnteredEventDetails"]["name"], e["stateEnteredEventDetails"]))
    return out


def states_entered(execution: Any) -> list[str]:
    """The names of the states the execution entered, in order (a Map's or Parallel's inner states too)."""
    return [name for name, _ in _entered(execution.history)]


def assert_path(execution: Any, expected: list[str]) -> None:
    """Fail with both paths shown unless the execution entered exactly `expected`, in order."""
    got = states_entered(execution)
    if got != list(expected):
        raise AssertionError(f"path taken: {got}\n      expected: {list(expected)}\n(execution {execution.status})")


def _details(execution: Any, state: str, suffix: str, key: str, occurrence: int) -> Any:
    found = [e for e in execution.history if e["type"].endswith(suffix)
             and e.get(key, {}).get("name") == state]
    if len(found) <= occurrence:
        raise AssertionError(f"state {state!r} was {'entered' if suffix == 'StateEntered' else 'left'} "
                             f"{len(found)} time(s); path: {states_entered(execution)}")
    text = found[occurrence][key].get("input" if suffix == "StateEntered" else "output")
    return json.loads(text) if isinstance(text, str) else text


def state_input(execution: Any, state: str, occurrence: int = 0) -> Any:
    """What `state` received (its StateEntered input), the `occurrence`-th time it was entered."""
    return _details(execution, state, "StateEntered", "stateEnteredEventDetails", occurrence)


def state_output(execution: Any, state: str, occurrence: int = 0) -> Any:
    """What `state` passed on (its StateExited output)."""
    return _details(execution, state, "StateExited", "stateExitedEventDetails", occurrence)


def mock_test_cases(config: str | Path, state_machine: str) -> list[Any]:
    """The test cases a MockConfigFile gives `state_machine`, as pytest params named by test case:
    ``@pytest.mark.parametrize("test_case", mock_test_cases("MockConfigFile.json", "Order"))``."""
    doc = json.loads(Path(config).read_text())
    machine = (doc.get("StateMachines") or {}).get(state_machine)
    if machine is None:
        raise pytest.UsageError(f"{config}: no state machine {state_machine!r} in StateMachines "
                                f"({', '.join(sorted(doc.get('StateMachines') or {})) or 'none'})")
    return [pytest.param(name, id=name) for name in (machine.get("TestCases") or {})]


def normalised_history(events: list[dict]) -> list[dict]:
    """A history without what differs between two identical runs: timestamps (the virtual clock
    starts at the wall clock's time), dates inside outputs, random ids."""
    out = []
    for e in events:
        e = {k: v for k, v in e.items() if k != "timestamp"}
        text = json.dumps(e, sort_keys=True, default=str)
        text = _RUN_SUFFIX.sub(r"\1", _UUID.sub("<uuid>", text))
        text = _ISO_TIME.sub("<time>", _HTTP_DATE.sub("<date>", text))
        out.append(json.loads(text))
    return out


# -- fixtures ------------------------------------------------------------------------------------

def _engine(**kw: Any):
    from statelang import Engine
    from statelang.runtime.services.local import LocalServices
    eng = Engine(db="memory", clock="virtual", eager="always", **kw)
    eng.resources.services = LocalServices(eng.store, eng.clock, region=eng.region, account_id=eng.account_id)
    eng.resources.clock = eng.clock
    _attach_event_bus(eng)
    return eng


def _attach_event_bus(eng) -> None:
    """events:putEvents tasks go to statelang's event bus, as with `statelang run`."""
    from statelang.eventbus.integration import install
    install(eng)


@pytest.fixture
def sfn_engine(tmp_path, monkeypatch):
    """An in-memory Engine on the virtual clock, with local AWS services (S3 buckets in the test's
    tmp_path, for S3 tasks and the distributed Map alike); closed after the test."""
    monkeypatch.setenv("STATELANG_S3_ROOT", str(tmp_path / "s3"))
    eng = _engine()
    yield eng
    eng.close()


@pytest.fixture
def sfn_client(sfn_engine):
    """The boto3-shaped stepfunctions client of `sfn_engine`."""
    return sfn_engine.client()


@dataclass
class TemplateUnderTest:
    template: Any
    engine: Any

    @property
    def services(self):
        return self.engine.resources.services

    def run(self, state_machine: str, input: Any = None, **kw: Any):
        return self.template.run(state_machine, input, engine=self.engine, **kw)


@pytest.fixture
def statelang_template(tmp_path, monkeypatch):
    """Factory: ``statelang_template(path, handlers=None, **parameters)`` -> TemplateUnderTest on a
    fresh virtual-clock engine (its S3 buckets in the test's tmp_path)."""
    monkeypatch.setenv("STATELANG_S3_ROOT", str(tmp_path / "s3"))
    made = []

    def load(path: str | Path, handlers: dict | None = None, **parameters: str) -> TemplateUnderTest:
        from statelang.templates.runner import template_engine
        from statelang.templates.template import load_template
        template = load_template(path, {k: str(v) for k, v in parameters.items()})
        eng = template_engine(template, clock="virtual", handlers=handlers, eager="always")
        _attach_event_bus(eng)
        made.append(eng)
        return TemplateUnderTest(template, eng)
    yield load
    for eng in made:
        eng.close()


@pytest.fixture
def sfn_golden(request):
    """``sfn_golden(name, execution)``: compare with (or, with --statelang-update-golden or when the
    file is new, write) ``golden/<name>.history.json`` beside the test module."""
    update = request.config.getoption("--statelang-update-golden")
    folder = Path(request.path).parent / "golden"

    def check(name: str, execution: Any) -> Path:
        path = folder / f"{name}.history.json"
        got = normalised_history(execution.history)
        if update or not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
            return path
        want = json.loads(path.read_text())
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
            raise AssertionError(f"history differs from {path} at event {first + 1}:\n"
                                 f"  got:  {got[first] if first < len(got) else '(no more events)'}\n"
                                 f"  want: {want[first] if first < len(want) else '(no more events)'}\n"
                                 "run pytest with --statelang-update-golden to accept the new history")
        return path
    return check
