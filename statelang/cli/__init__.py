"""The `statelang` command line: ``statelang run|validate|executions|task|worker|history|events|serve|...``."""

from statelang.cli.main import main

__all__ = ["main"]
