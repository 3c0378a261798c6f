"""botocore's parameter-validation report in JSON's words, for the HTTP API and the console alike.

botocore's validator names Python types ("type: <class 'str'>"); a client sent JSON, so the message
names JSON's. Both `server.app` (the AWS protocols) and `server.console` answer with it.
"""

from __future__ import annotations

import re

__all__ = ["JSON_TYPE_NAMES", "validation_words"]

JSON_TYPE_NAMES = {"str": "string", "list": "list", "tuple": "list", "dict": "object", "int": "integer",
                   "bool": "boolean", "float": "number", "Decimal": "number", "NoneType": "null",
                   "datetime": "timestamp", "bytes": "blob", "bytearray": "blob"}
_PY_TYPE = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
_BAD_TYPE = re.compile(r"^Invalid type for parameter (\S+), value: .*, type: (<class '[\w.]+'>), valid types: (.*)$")


def validation_words(report: str) -> str:
    """botocore's ParamValidationError text in JSON's words (no Python types or reprs), one line."""
    def json_type(text: str) -> str:
        found = _PY_TYPE.search(text)
        return JSON_TYPE_NAMES.get(found.group(1), found.group(1)) if found else text

    lines = []
    for line in report.splitlines():
        bad = _BAD_TYPE.match(line)
        if bad:
            wanted = dict.fromkeys(json_type(t) for t in bad.group(3).split(", "))
            got = json_type(bad.group(2))
            line = f"Invalid type for parameter {bad.group(1)}: {'an' if got[0] in 'aeiou' else 'a'} {got}, " \
                   f"expected {' or '.join(wanted)}"
        lines.append(_PY_TYPE.sub(lambda m: JSON_TYPE_NAMES.get(m.group(1), m.group(1)), line).strip())
    return " ".join(x for x in lines if x)
