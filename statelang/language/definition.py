"""The old home of definition loading, now `statelang.language.loading`; only re-exports remain.

The frozen pydantic models of every state type that lived here were used by tests alone (the
engine compiles the plain definition: `statelang.language.compiler`), so they went, and pydantic
with them. statelang/runtime/engine.py still imports `load_definition` from here.
"""

from statelang.language.loading import json_text_problems, load_definition

__all__ = ["json_text_problems", "load_definition"]
