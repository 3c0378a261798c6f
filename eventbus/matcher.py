"""The plain rule index: a necessary-condition filter, then each candidate rule's predicate.

Kept as a reference and a benchmark peer for the compiled matcher (`ruler.PatternIndex`), which
the bus uses.

Most rules name the exact values they require of some field (``source``, ``detail-type``, ...).
`PlainPatternIndex` files each rule under those values of its most selective such field; an event
then looks up its own values of the indexed fields and evaluates only the rules found there,
plus the few rules that require no exact value anywhere. The filing is a necessary condition
only, so every candidate is still confirmed by its compiled pattern: the index can never
change a result, only skip work.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from statelang.eventbus.patterns import MISSING, CompiledPattern, compile_pattern, index_key, leaf_values

__all__ = ["PlainPatternIndex"]

# Envelope fields that usually tell rules apart best; preferred among equally narrow choices.
_PREFERRED = {("detail-type",): 0, ("source",): 1, ("resources",): 2, ("account",): 3, ("region",): 4}


def _choose_path(required: dict[tuple[str, ...], frozenset]) -> tuple[str, ...] | None:
    """The required field with the fewest allowed values: its bucket holds the fewest rules."""
    if not required:
        return None
    return min(required, key=lambda path: (len(required[path]), _PREFERRED.get(path, 9), len(path), path))


def _values_at(event: Any, path: tuple[str, ...]) -> list:
    """Every leaf value the event has at ``path``, through arrays of objects on the way."""
    nodes = [event]
    for key in path:
        next_nodes = []
        for node in nodes:
            if isinstance(node, dict):
                child = node.get(key, MISSING)
                if child is not MISSING:
                    next_nodes.append(child)
            elif isinstance(node, list):
                stack = list(node)
                while stack:
                    item = stack.pop()
                    if isinstance(item, dict):
                        child = item.get(key, MISSING)
                        if child is not MISSING:
                            next_nodes.append(child)
                    elif isinstance(item, list):
                        stack.extend(item)
        nodes = next_nodes
        if not nodes:
            return []
    values: list = []
    for node in nodes:
        values.extend(leaf_values(node))
    return values


class PlainPatternIndex:
    """Rules by id; `match(event)` returns the ids of the rules whose patterns match."""

    def __init__(self, rules: Iterable[tuple[Hashable, Any]] = ()):
        self._rules: dict[Hashable, tuple[int, CompiledPattern, tuple | None]] = {}
        self._buckets: dict[tuple[str, ...], dict[tuple, set]] = {}
        self._unindexed: set = set()
        self._sequence = 0
        for rule_id, pattern in rules:
            self.add(rule_id, pattern)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: Hashable) -> bool:
        return rule_id in self._rules

    def add(self, rule_id: Hashable, pattern: Any) -> CompiledPattern:
        """Add or replace a rule. Raises `InvalidEventPattern` (and keeps the old rule) if invalid."""
        compiled = compile_pattern(pattern)
        if rule_id in self._rules:
            self.remove(rule_id)
        path = _choose_path(compiled.required)
        self._sequence += 1
        self._rules[rule_id] = (self._sequence, compiled, path)
        if path is None:
            self._unindexed.add(rule_id)
        else:
            bucket = self._buckets.setdefault(path, {})
            for key in compiled.required[path]:
                bucket.setdefault(key, set()).add(rule_id)
        return compiled

    def remove(self, rule_id: Hashable) -> bool:
        """Forget a rule; returns whether it was there (removing an unknown id is not an error)."""
        entry = self._rules.pop(rule_id, None)
        if entry is None:
            return False
        _, compiled, path = entry
        if path is None:
            self._unindexed.discard(rule_id)
            return True
        bucket = self._buckets[path]
        for key in compiled.required[path]:
            holders = bucket.get(key)
            if holders is not None:
                holders.discard(rule_id)
                if not holders:
                    del bucket[key]
        if not bucket:
            del self._buckets[path]
        return True

    def get(self, rule_id: Hashable) -> CompiledPattern | None:
        entry = self._rules.get(rule_id)
        return None if entry is None else entry[1]

    def candidates(self, event: Any) -> set:
        """Rules that might match: those filed under the event's values, and the unindexed."""
        found = set(self._unindexed)
        for path, bucket in self._buckets.items():
            for value in _values_at(event, path):
                try:
                    holders = bucket.get(index_key(value))
                except TypeError:  # an unhashable leaf cannot equal an exact pattern value
                    continue
                if holders:
                    found |= holders
        return found

    def match(self, event: Any) -> list:
        """Ids of the matching rules, in the order the rules were added."""
        rules = self._rules
        hits = [rule_id for rule_id in self.candidates(event) if rules[rule_id][1].matches(event)]
        if len(hits) > 1:
            hits.sort(key=lambda rule_id: rules[rule_id][0])
        return hits
