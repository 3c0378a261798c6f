"""What a compiled path, template, intrinsic or choice rule may read besides the state's input.

Compiled closures have the signature ``fn(data, env)``. `Env` carries the context object (``$$``),
the visible variables, and the random source: intrinsics such as ``States.UUID`` draw from
``env.rng`` only, so that a replay that seeds it the same way reproduces the same values. The
random source is made on first use because seeding one costs more than most states' whole work.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


class Env:
    __slots__ = ("context", "variables", "_rng", "_seed")

    def __init__(self, context: Mapping[str, Any] | None = None,
                 variables: Mapping[str, Any] | None = None,
                 rng: random.Random | None = None, seed: Any = 0):
        self.context = context if context is not None else {}
        self.variables = variables if variables is not None else {}
        self._rng = rng
        self._seed = seed

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            seed = self._seed
            if isinstance(seed, tuple):   # (execution, frame, event id): joined only when drawn from
                seed = "#".join(map(str, seed))
            self._rng = random.Random(seed)
        return self._rng
