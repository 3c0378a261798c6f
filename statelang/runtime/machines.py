"""Definitions compiled once per distinct text, shared by every engine of the process."""

from __future__ import annotations

from datetime import timedelta

from statelang.interpreter.step import MAX_EXECUTION_SECONDS
from statelang.language import jsontext
from statelang.language.compiler import CompiledMachine

MAX_EXECUTION_TIME = timedelta(seconds=MAX_EXECUTION_SECONDS)
_COMPILED: dict[str, CompiledMachine] = {}
_COMPILED_LIMIT = 512


def definition_text(definition: str | dict) -> str:
    """The definition as JSON text: the text itself, or a dict written out. Caches are keyed by
    this text, never by the identity of a caller's object, so a dict edited between two runs runs
    edited."""
    if isinstance(definition, str):
        return definition
    return jsontext.canonical(definition)


def compiled(definition: str | dict) -> CompiledMachine:
    """Compile once per distinct definition text, shared by every engine of the process: the
    compiled machine is immutable, so sharing it is safe."""
    text = definition_text(definition)
    m = _COMPILED.get(text)
    if m is None:
        from statelang.language.definition import load_definition
        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.clear()
        m = _COMPILED[text] = CompiledMachine(load_definition(text))
    return m
