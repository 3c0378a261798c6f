"""All rules compiled into one structure over the event's fields: an event touches only the
values indexes of the fields rules name, never each rule in turn.

The approach is aws/event-ruler's (``Machine``): a rule's ``$or`` is expanded into alternative
conjunctions ("sub-rules", each a list of leaf conditions on field paths), and the conditions of
every sub-rule are filed in a trie of field paths. Each leaf condition on a path lands in a
`_Group` of that path (a sub-rule with two conditions on one path, which only ``$or`` can give,
uses a second group, its "slot"). A group holds value indexes over the terms of its conditions:
a dict per exact value, prefix and suffix tables probed by length, ``equals-ignore-case`` by the
lower-cased value, numeric ranges cut into elementary intervals found by bisection, and the
exclusions of ``anything-but``. Sub-rules are bits of a Python integer: a group answers, for the
event's values at its path, the mask of sub-rules it lets through (those with no condition
there, and those whose condition holds), and the event's matches are the AND of all groups.

Event arrays of objects keep event-ruler's array consistency: an object pattern applied to an
array needs one element to satisfy all its conditions, so the mask under such a path is the OR
over the elements of each element's AND. Only terms with no index of their own (wildcards, CIDR
ranges) are evaluated per event value, once per distinct term of a path.

A rule whose ``$or`` expands to more than `MAX_SUB_RULES` conjunctions is not expanded: its
compiled predicate is evaluated for every event instead, which bounds the compiled structure
(each "$or" multiplies the conjunctions by its branch count). The plain matcher, `CompiledPattern.matches`, stays
the reference: the property tests require both to agree on generated rules and events.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from statelang.eventbus.patterns import (
    MISSING,
    CompiledPattern,
    compile_pattern,
    index_key,
    ip_literal,
    leaf_values,
    object_elements,
)
from statelang.eventbus.terms import (
    AnythingBut,
    CidrRange,
    EqualsIgnoreCase,
    Exclusion,
    Leaf,
    NumericRange,
    ObjectPattern,
    Prefix,
    Suffix,
    Wildcard,
)

__all__ = ["MAX_SUB_RULES", "PatternIndex", "expand"]

MAX_SUB_RULES = 256

LEAF = -1
Steps = tuple[tuple[str, int], ...]
Conjunction = tuple[tuple[Steps, Leaf], ...]
# A path in the trie: (key, scope slot) per step; a sub-rule's second object on one key is slot 1.
Path = tuple[tuple[str, int], ...]


def expand(tree: ObjectPattern, limit: int = MAX_SUB_RULES) -> list[Conjunction] | None:
    """The pattern as alternative conjunctions of (steps, leaf); None past ``limit`` of them.

    A step is a key and the number of the pattern object entered there (`LEAF` for the leaf's
    own key). Distributing ``$or`` keeps array consistency: "some element satisfies A and (B or
    C)" is "some element satisfies A and B, or some element satisfies A and C". Two objects on
    one key are two scopes, though (``{"d": {...}, "$or": [{"d": {...}}, ...]}``): each may be
    satisfied by another element of an array, so their numbers keep them apart.
    """
    return _expand(tree, limit, (), itertools.count())


def _expand(tree: ObjectPattern, limit: int, prefix: Steps, numbers: Iterator[int]) -> list[Conjunction] | None:
    conjunctions: list[Conjunction] = [()]
    for field in tree.fields:
        if isinstance(field.value, Leaf):
            step = prefix + ((field.key, LEAF),)
            conjunctions = [c + ((step, field.value),) for c in conjunctions]
            continue
        nested = _expand(field.value, limit, prefix + ((field.key, next(numbers)),), numbers)
        if nested is None or len(conjunctions) * len(nested) > limit:
            return None
        conjunctions = [c + n for c in conjunctions for n in nested]
    for branches in tree.alternatives:
        options: list[Conjunction] = []
        for branch in branches:
            nested = _expand(branch, limit, prefix, numbers)
            if nested is None:
                return None
            options.extend(nested)
        if len(conjunctions) * len(options) > limit:
            return None
        conjunctions = [c + o for c in conjunctions for o in options]
    return conjunctions


def _or_into(table: dict, key: Hashable, bit: int) -> None:
    table[key] = table.get(key, 0) | bit


class _Numeric:
    """Numeric ranges of one group, cut at their bounds into elementary intervals.

    Intervals alternate: index ``2i`` is the open interval below ``bounds[i]``, ``2i + 1`` the
    point ``bounds[i]``, and the last index what lies above every bound. Python compares ints
    and floats exactly, so bisection agrees with the plain matcher's comparisons.
    """

    def __init__(self, ranges: list[tuple[NumericRange, int]]):
        bounds = sorted({operand for term, _ in ranges for _, operand in term.comparisons})
        self.bounds = bounds
        starts: dict[int, list[int]] = {}
        ends: dict[int, list[int]] = {}
        for term, bit in ranges:
            first, last = 0, 2 * len(bounds)
            for operator, operand in term.comparisons:
                at = bisect_left(bounds, operand)
                if operator == "=":
                    first = last = 2 * at + 1
                elif operator == ">":
                    first = 2 * at + 2
                elif operator == ">=":
                    first = 2 * at + 1
                elif operator == "<":
                    last = 2 * at
                else:  # "<="
                    last = 2 * at + 1
            starts.setdefault(first, []).append(bit)
            ends.setdefault(last, []).append(bit)
        # A sweep with a count per bit: one sub-rule may hold several overlapping ranges.
        active: dict[int, int] = {}
        current = 0
        self.masks: list[int] = []
        for interval in range(2 * len(bounds) + 1):
            for bit in starts.get(interval, ()):
                active[bit] = active.get(bit, 0) + 1
                current |= bit
            self.masks.append(current)
            for bit in ends.get(interval, ()):
                active[bit] -= 1
                if not active[bit]:
                    current &= ~bit

    def mask(self, value: int | float) -> int:
        bounds = self.bounds
        at = bisect_left(bounds, value)
        if at < len(bounds) and bounds[at] == value:
            return self.masks[2 * at + 1]
        return self.masks[2 * at]


def _lengths_lookup(table: dict[str, int], suffix: bool) -> Callable[[str], int]:
    """Probe ``table`` (prefix or suffix text -> mask) with the value's slices of each length."""
    lengths = sorted({len(text) for text in table})
    get = table.get
    if suffix:
        everything = get("", 0)
        lengths = [n for n in lengths if n]

        def suffixes(value: str) -> int:
            mask = everything
            size = len(value)
            for n in lengths:
                if n > size:
                    break
                mask |= get(value[-n:], 0)
            return mask

        return suffixes

    def prefixes(value: str) -> int:
        mask = 0
        size = len(value)
        for n in lengths:
            if n > size:
                break
            mask |= get(value[:n], 0)
        return mask

    return prefixes


class _Group:
    """The conditions on one (path, slot): for the event's values there, the sub-rules let through."""

    def __init__(self, conditions: list[tuple[int, Leaf]], everyone: int):
        held = 0
        wants_absent = wants_present = 0
        strings: dict[str, int] = {}
        others: dict[tuple, int] = {}
        addresses: dict[Any, int] = {}
        tables: dict[str, dict] = {"prefix": {}, "prefix_folded": {}, "suffix": {}, "suffix_folded": {},
                                   "folded": {}}
        regexes: dict[Any, int] = {}
        cidrs: dict[CidrRange, int] = {}
        ranges: list[tuple[NumericRange, int]] = []
        # The n-th anything-but of each leaf goes to layer n: one leaf's exclusions are ORed
        # (any of them letting the value through is enough), so they must not share a mask.
        layers: list[_Exclusions] = []
        for bit, leaf in conditions:
            layer = 0
            held |= bit
            if leaf.absent:
                wants_absent |= bit
            if leaf.present:
                wants_present |= bit
            if leaf.exact is not None:
                for key in leaf.exact.keys:
                    if key[0] == "s":
                        _or_into(strings, key[1], bit)
                    else:
                        _or_into(others, key, bit)
                for address in leaf.exact.ip_literals:
                    _or_into(addresses, address, bit)
            for term in leaf.terms:
                if isinstance(term, Prefix):
                    _or_into(tables["prefix_folded" if term.fold else "prefix"], term.text, bit)
                elif isinstance(term, Suffix):
                    _or_into(tables["suffix_folded" if term.fold else "suffix"], term.text, bit)
                elif isinstance(term, EqualsIgnoreCase):
                    _or_into(tables["folded"], term.folded, bit)
                elif isinstance(term, Wildcard):
                    _or_into(regexes, term.regex, bit)
                elif isinstance(term, NumericRange):
                    ranges.append((term, bit))
                elif isinstance(term, CidrRange):
                    _or_into(cidrs, term, bit)
                else:
                    if layer == len(layers):
                        layers.append(_Exclusions())
                    layers[layer].add(term, bit)
                    layer += 1
        free = everyone & ~held
        self.absent = free | wants_absent
        # Let through whatever the values: sub-rules without a condition here, and exists true.
        self.base = free | wants_present
        self.one = self._one(strings, others, addresses, tables, regexes, cidrs, ranges, layers)
        # The common group of exact strings only: the walk reads this dict itself, no call made.
        simple = not (others or addresses or regexes or cidrs or ranges or layers or any(tables.values()))
        self.strings: dict[str, int] | None = strings if simple else None

    def present(self, values: Iterable) -> int:
        """The sub-rules let through when the path has these (one or more) leaf values."""
        mask = self.base
        one = self.one
        for value in values:
            mask |= one(value)
        return mask

    @staticmethod
    def _one(strings: dict, others: dict, addresses: dict, tables: dict, regexes: dict,
             cidrs: dict, ranges: list, layers: list[_Exclusions]) -> Callable[[Any], int]:
        """The conditions one leaf value satisfies, made of only the probes the group's terms need."""
        on_string: list[Callable[[str], int]] = []
        on_folded: list[Callable[[str], int]] = []
        on_number: list[Callable[[Any], int]] = []
        if tables["prefix"]:
            on_string.append(_lengths_lookup(tables["prefix"], suffix=False))
        if tables["suffix"]:
            on_string.append(_lengths_lookup(tables["suffix"], suffix=True))
        if tables["prefix_folded"]:
            on_folded.append(_lengths_lookup(tables["prefix_folded"], suffix=False))
        if tables["suffix_folded"]:
            on_folded.append(_lengths_lookup(tables["suffix_folded"], suffix=True))
        if tables["folded"]:
            folded_get = tables["folded"].get
            on_folded.append(lambda low: folded_get(low, 0))
        if regexes:
            wildcards = list(regexes.items())
            on_string.append(lambda v: _any_regex(wildcards, v))
        if addresses or cidrs:
            on_string.append(_address_lookup(addresses, list(cidrs.items())))
        if ranges:
            numeric = _Numeric(ranges).mask
            on_number.append(lambda v: numeric(v) if type(v) is int or math.isfinite(v) else 0)
        on_string_exclusions = [(layer.mask, layer.rejecting()) for layer in layers]
        on_number_exclusions = [(layer.mask, layer.numbers.get) for layer in layers]
        excluding = 0
        for layer in layers:
            excluding |= layer.mask
        strings_get = strings.get
        others_get = others.get

        def one(value: Any) -> int:
            kind = type(value)
            if kind is str:
                mask = strings_get(value, 0)
                for probe in on_string:
                    mask |= probe(value)
                if on_folded:
                    low = value.lower()
                    for probe in on_folded:
                        mask |= probe(low)
                for bits, rejecting in on_string_exclusions:
                    mask |= bits & ~rejecting(value)
                return mask
            mask = others_get(index_key(value), 0) if others else 0
            if kind is int or kind is float:
                for probe in on_number:
                    mask |= probe(value)
                if excluding:
                    if kind is int or math.isfinite(value):
                        key = index_key(value)
                        for bits, rejecting_number in on_number_exclusions:
                            mask |= bits & ~rejecting_number(key, 0)
                    else:
                        mask |= excluding
            elif excluding:
                mask |= excluding
            return mask

        return one


def _any_regex(wildcards: list, value: str) -> int:
    mask = 0
    for regex, bits in wildcards:
        if regex.fullmatch(value) is not None:
            mask |= bits
    return mask


def _address_lookup(addresses: dict, cidrs: list) -> Callable[[str], int]:
    """Strings that spell an IP address: equal addresses of exact values, and CIDR ranges."""

    def lookup(value: str) -> int:
        address = ip_literal(value)
        if address is None:
            return 0
        mask = addresses.get(address, 0)
        if cidrs:
            number, version = int(address), address.version
            for term, bits in cidrs:
                if term.version == version and term.bottom <= number <= term.top:
                    mask |= bits
        return mask

    return lookup


class _Exclusions:
    """One layer of ``anything-but`` conditions of a group: which of them reject a value."""

    _TABLES = {Exclusion.STRINGS: "strings", Exclusion.NUMBERS: "numbers", Exclusion.PREFIX: "prefixes",
               Exclusion.SUFFIX: "suffixes", Exclusion.EQUALS_IGNORE_CASE: "folded"}

    def __init__(self):
        self.mask = 0
        self.strings: dict[str, int] = {}
        self.numbers: dict[tuple, int] = {}  # by index key
        self.prefixes: dict[str, int] = {}
        self.suffixes: dict[str, int] = {}
        self.folded: dict[str, int] = {}
        self.regexes: dict[Any, int] = {}

    def add(self, term: AnythingBut, bit: int) -> None:
        self.mask |= bit
        name = self._TABLES.get(term.exclusion)
        for operand in term.operands:
            if name is None:  # Exclusion.WILDCARD
                _or_into(self.regexes, operand.regex, bit)
            else:
                _or_into(getattr(self, name), operand, bit)

    def rejecting(self) -> Callable[[str], int]:
        """For a string value: the conditions of this layer that exclude it."""
        probes: list[Callable[[str], int]] = []
        if self.strings:
            exact_get = self.strings.get
            probes.append(lambda v: exact_get(v, 0))
        if self.prefixes:
            probes.append(_lengths_lookup(self.prefixes, suffix=False))
        if self.suffixes:
            probes.append(_lengths_lookup(self.suffixes, suffix=True))
        if self.folded:
            folded_get = self.folded.get
            probes.append(lambda v: folded_get(v.lower(), 0))
        if self.regexes:
            wildcards = list(self.regexes.items())
            probes.append(lambda v: _any_regex(wildcards, v))
        if len(probes) == 1:
            return probes[0]

        def rejected(value: str) -> int:
            mask = 0
            for probe in probes:
                mask |= probe(value)
            return mask

        return rejected


class _Node:
    """One field path of the trie: the groups of conditions on it, and the paths below it."""

    __slots__ = ("step", "key", "groups", "children", "absent", "groups_absent", "children_absent", "entries")

    def __init__(self, step: tuple[str, int]):
        self.step = step
        self.key = step[0]
        self.groups: list[_Group] = []
        self.children: list[_Node] = []
        self.absent = 0  # the mask when the event lacks this path: every condition below is absent
        self.groups_absent = 0
        self.children_absent = 0
        # Per child, what the walk reads: (key, absent, groups_absent, groups, child or None).
        self.entries: tuple[tuple[str, int, int, tuple[_Group, ...], _Node | None], ...] = ()


class _Machine:
    """The compiled form of a fixed set of rules (rebuilt when the set changes)."""

    def __init__(self, rules: list[tuple[Hashable, CompiledPattern]]):
        conditions: dict[Path, list[list[tuple[int, Leaf]]]] = {}
        self.owners: list[int] = []  # bit -> position of its rule
        self.first_bits: list[int] = []  # position -> its first sub-rule's bit number
        self.ids = [rule_id for rule_id, _ in rules]
        self.residual: list[tuple[int, CompiledPattern]] = []
        for position, (_, compiled) in enumerate(rules):
            conjunctions = expand(compiled.tree)
            if conjunctions is None:
                self.residual.append((position, compiled))
                self.first_bits.append(0)
                continue
            self.first_bits.append(len(self.owners))
            for conjunction in conjunctions:
                bit = 1 << len(self.owners)
                self.owners.append(position)
                scopes: dict[tuple, dict[int, int]] = {}
                slots: dict[Path, int] = {}
                for steps, leaf in conjunction:
                    path: Path = ()
                    for key, number in steps[:-1]:
                        numbered = scopes.setdefault((path, key), {})
                        path += ((key, numbered.setdefault(number, len(numbered))),)
                    path += ((steps[-1][0], 0),)
                    slot = slots.get(path, 0)
                    slots[path] = slot + 1
                    groups = conditions.setdefault(path, [])
                    if slot == len(groups):
                        groups.append([])
                    groups[slot].append((bit, leaf))
        self.everyone = (1 << len(self.owners)) - 1
        self.root = _Node(("", 0))
        for path in sorted(conditions):
            node = self.root
            for step in path:
                node = next((c for c in node.children if c.step == step), None) or self._child(node, step)
            node.groups = [_Group(group, self.everyone) for group in conditions[path]]
        self._seal(self.root)

    @staticmethod
    def _child(node: _Node, step: tuple[str, int]) -> _Node:
        child = _Node(step)
        node.children.append(child)
        return child

    def _seal(self, node: _Node) -> None:
        node.groups_absent = self.everyone
        for group in node.groups:
            node.groups_absent &= group.absent
        node.children_absent = self.everyone
        for child in node.children:
            self._seal(child)
            node.children_absent &= child.absent
        node.absent = node.groups_absent & node.children_absent
        node.entries = tuple((c.key, c.absent, c.groups_absent, tuple(c.groups), c if c.children else None)
                             for c in node.children)

    def match(self, event: Any) -> list:
        mask = self._object(self.root, event) if self.owners else 0
        hits = []
        owners, first_bits = self.owners, self.first_bits
        # From the highest bit down: a rule's sub-rules are consecutive bits, so keeping only the
        # bits below its first clears the rule with one AND.
        while mask:
            position = owners[mask.bit_length() - 1]
            hits.append(position)
            mask &= (1 << first_bits[position]) - 1
        hits.reverse()
        if self.residual:
            hits.extend(position for position, compiled in self.residual if compiled.matches(event))
            hits.sort()
        ids = self.ids
        return [ids[position] for position in hits]

    # -- the walk over the event ---------------------------------------------------------------
    def _object(self, node: _Node, value: Any) -> int:
        """An object pattern on ``value``: its fields, or through an array one element's."""
        if type(value) is dict:
            return self._fields(node, value)
        if isinstance(value, list):
            elements = object_elements(value)
            if elements:
                mask = 0
                for element in elements:
                    mask |= self._fields(node, element)
                return mask
        return node.children_absent

    def _fields(self, node: _Node, obj: dict) -> int:
        mask = self.everyone
        get = obj.get
        for key, absent, groups_absent, groups, below in node.entries:
            value = get(key, MISSING)
            if value is MISSING:
                mask &= absent
                if not mask:
                    return 0
                continue
            if groups:
                if type(value) is str:
                    for group in groups:
                        strings = group.strings
                        mask &= group.base | (strings.get(value, 0) if strings is not None else group.one(value))
                elif not isinstance(value, (list, dict)):
                    for group in groups:
                        mask &= group.base | group.one(value)
                else:
                    values = leaf_values(value)
                    if values:
                        for group in groups:
                            mask &= group.present(values)
                    else:
                        mask &= groups_absent
            if below is not None:
                mask &= self._fields(below, value) if type(value) is dict else self._object(below, value)
            if not mask:
                return 0
        return mask


class PatternIndex:
    """Rules by id; `match(event)` returns the ids of the rules whose patterns match, in the
    order the rules were added. Changing the rules recompiles on the next match."""

    def __init__(self, rules: Iterable[tuple[Hashable, Any]] = ()):
        self._rules: dict[Hashable, CompiledPattern] = {}
        self._machine: _Machine | None = None
        for rule_id, pattern in rules:
            self.add(rule_id, pattern)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: Hashable) -> bool:
        return rule_id in self._rules

    def add(self, rule_id: Hashable, pattern: Any) -> CompiledPattern:
        """Add or replace a rule (a replaced rule counts as added last). Raises
        `InvalidEventPattern`, keeping the old rule, if the pattern is invalid."""
        compiled = compile_pattern(pattern)
        self._rules.pop(rule_id, None)
        self._rules[rule_id] = compiled
        self._machine = None
        return compiled

    def remove(self, rule_id: Hashable) -> bool:
        """Forget a rule; returns whether it was there (removing an unknown id is not an error)."""
        if self._rules.pop(rule_id, None) is None:
            return False
        self._machine = None
        return True

    def get(self, rule_id: Hashable) -> CompiledPattern | None:
        return self._rules.get(rule_id)

    def match(self, event: Any) -> list:
        machine = self._machine
        if machine is None:
            machine = self._machine = _Machine(list(self._rules.items()))
        return machine.match(event)
