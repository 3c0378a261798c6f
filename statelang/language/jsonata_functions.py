"""The functions AWS Step Functions adds to JSONata: $partition, $range, $hash, $random, $uuid, $parse.

They stand in for the JSONPath intrinsics (States.ArrayPartition, States.ArrayRange, States.Hash,
States.MathRandom, States.UUID, States.StringToJson), which JSONata states cannot call. AWS makes
several bad arguments evaluate to *undefined* rather than fail (a chunk size of zero, an empty
array, a range whose step is missing or points away from the end, a hash without an algorithm);
the field holding the expression then fails with "returned nothing (undefined)", which is why
those cases return None here instead of raising.

Randomness comes from the state's `Env.rng` (seeded per execution event) so that a replay draws the
same numbers; the evaluator publishes the current `Env` through `current` while it evaluates.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import uuid
from typing import Any

from jsonata import Jsonata
from jsonata.utils import Utils

from statelang.language.errors import StatelangError

_local = threading.local()

HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384",
                   "SHA-512": "sha512"}
MAX_RANGE_ITEMS = 360145  # AWS accepts $range(1, 360145, 1) and refuses one element more


class FunctionError(StatelangError):
    """A JSONata-style error (code and message) raised by one of AWS's functions."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def set_env(env: Any) -> Any:
    previous = getattr(_local, "env", None)
    _local.env = env
    return previous


def current_env() -> Any:
    return getattr(_local, "env", None)


def _signature_error(index: int, name: str) -> FunctionError:
    return FunctionError("T0410", f'Argument {index} of function "{name}" does not match function signature')


def _plain(value: Any) -> Any:
    """JSONata hands arguments over with its own null marker; functions see JSON values."""
    if value is Utils.NULL_VALUE:
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _trunc(value: float) -> int:
    """AWS rounds a non-integer count towards zero ($partition(items, 2.9) chunks by 2)."""
    return int(math.trunc(value))


def partition(array: Any = None, size: Any = None) -> Any:
    if array is None:
        return None
    if not isinstance(array, list):
        array = [array]  # JSONata treats a single value as a one-element sequence
    if not _is_number(size):
        raise _signature_error(2, "partition")
    n = _trunc(size)
    if n <= 0 or not array:
        return None
    items = [_plain(v) for v in array]
    return [items[i:i + n] for i in range(0, len(items), n)]


def range_(start: Any = None, end: Any = None, step: Any = None) -> Any:
    for i, v in enumerate((start, end), 1):
        if not _is_number(v):
            raise _signature_error(i, "range")
    if step is None:
        return None
    if not _is_number(step):
        raise _signature_error(3, "range")
    a, b, s = _trunc(start), _trunc(end), _trunc(step)
    if s == 0 or (b > a and s < 0) or (b < a and s > 0):
        return None
    count = (b - a) // s + 1
    if count > MAX_RANGE_ITEMS:
        raise FunctionError("D1001", "Expression evaluation memory limit exceeded")
    values = list(range(a, b + (1 if s > 0 else -1), s))
    return values[0] if len(values) == 1 else values  # a one-value range is the bare number


def hash_(text: Any = None, algorithm: Any = None) -> Any:
    if not isinstance(text, str):
        raise _signature_error(1, "hash")
    if algorithm is None:
        return None
    if not isinstance(algorithm, str) or algorithm not in HASH_ALGORITHMS:
        raise _signature_error(2, "hash")
    return hashlib.new(HASH_ALGORITHMS[algorithm], text.encode()).hexdigest()


def random_(seed: Any = None) -> float:
    if seed is None:
        env = current_env()
        rng = env.rng if env is not None else random.Random()
        return rng.random()
    if not _is_number(seed):
        raise _signature_error(1, "random")
    return random.Random(_trunc(seed)).random()


def uuid_() -> str:
    env = current_env()
    rng = env.rng if env is not None else random.Random()
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def parse(text: Any = None) -> Any:
    if not isinstance(text, str):
        raise _signature_error(1, "parse")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FunctionError("D3030", f"Unable to parse the string as JSON: {exc.msg}") from None


FUNCTIONS = {"partition": partition, "range": range_, "hash": hash_, "random": random_,
             "uuid": uuid_, "parse": parse}


def register(expression: Jsonata) -> None:
    """Bind AWS's functions into one compiled expression's environment (once, at compile time)."""
    for name, fn in FUNCTIONS.items():
        expression.register_lambda(name, fn)
