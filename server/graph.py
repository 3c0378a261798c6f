"""ASL definitions drawn as graphs: Mermaid and Graphviz DOT text, and SVG laid out here.

One small model feeds all three: the states of a scope (the machine, a Parallel branch, a Map's
ItemProcessor), the edges between them (Next, Default, Choices, Catch, End) and, for Parallel and
Map, nested groups. The SVG is drawn server-side so that the console needs no layout library and
no network: states are ranked by their distance from StartAt, each rank is a row, and a Parallel
or Map is a box holding its branches side by side. Each state's shape carries ``data-state`` and
classes (``visited``, ``running``, ``failed``) so that an execution's path can be highlighted by
the caller without re-laying the graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape

from statelang.language.loading import load_definition

NODE_H = 36
ROW_GAP = 34
COL_GAP = 18
PAD = 12
HEADER = 24
GROUP_TYPES = ("Parallel", "Map")


def _parse(definition: str | dict) -> dict:
    """The definition read as `statelang run` and `validate` read it: JSON, or an .asl.yaml file's
    YAML (a DefinitionError, a ValueError, names what is wrong with the text)."""
    data = load_definition(definition) if isinstance(definition, str) else definition
    if not isinstance(data, dict) or not isinstance(data.get("States"), dict):
        raise ValueError("not a state machine: it needs a States object")
    return data


def branches(state: dict) -> list[dict]:
    """The nested machines of a Parallel (its Branches) or a Map (ItemProcessor or Iterator)."""
    if state.get("Type") == "Parallel":
        return [b for b in state.get("Branches") or [] if isinstance(b, dict)]
    if state.get("Type") == "Map":
        inner = state.get("ItemProcessor") or state.get("Iterator")
        return [inner] if isinstance(inner, dict) else []
    return []


def edges(name: str, state: dict) -> list[tuple[str, str, str]]:
    """(from, to, label) for every way out of a state; "" is the machine's end."""
    out = []
    if state.get("Next"):
        out.append((name, state["Next"], ""))
    for rule in state.get("Choices") or []:
        if isinstance(rule, dict) and rule.get("Next"):
            out.append((name, rule["Next"], "choice"))
    if state.get("Default"):
        out.append((name, state["Default"], "default"))
    for catcher in state.get("Catch") or []:
        if isinstance(catcher, dict) and catcher.get("Next"):
            out.append((name, catcher["Next"], "catch"))
    if state.get("End") or state.get("Type") in ("Succeed", "Fail"):
        out.append((name, "", ""))
    return out


class _Ids:
    """Stable, syntax-safe identifiers for state names (which may hold any character)."""

    def __init__(self):
        self.ids: dict[tuple[int, str], str] = {}

    def __call__(self, scope: int, name: str) -> str:
        key = (scope, name)
        if key not in self.ids:
            self.ids[key] = f"s{len(self.ids)}"
        return self.ids[key]


# -- Mermaid ----------------------------------------------------------------------------------
def _mm_label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(definition: str | dict) -> str:
    machine = _parse(definition)
    ids, lines, counter = _Ids(), ["flowchart TD", "  start((start))", "  finish((end))"], [0]

    def scope(m: dict, depth: int, entry: str | None, indent: str) -> None:
        counter[0] += 1
        sid = counter[0]
        states = m.get("States") or {}
        if entry and m.get("StartAt") in states:
            lines.append(f"{indent}{entry} --> {ids(sid, m['StartAt'])}")
        for name, st in states.items():
            nid = ids(sid, name)
            if st.get("Type") in GROUP_TYPES:
                lines.append(f"{indent}subgraph {nid}[{_mm_label(name + ' (' + st['Type'] + ')')}]")
                lines.append(f"{indent}  direction TB")
                for n, br in enumerate(branches(st)):
                    bid = f"{nid}b{n}"
                    lines.append(f"{indent}  subgraph {bid}[{_mm_label('branch ' + str(n + 1))}]")
                    scope(br, depth + 1, None, indent + "    ")
                    lines.append(f"{indent}  end")
                lines.append(f"{indent}end")
            else:
                shape = "{%s}" if st.get("Type") == "Choice" else "[%s]"
                lines.append(indent + nid + shape % _mm_label(name))
        for name, st in states.items():
            for a, b, label in edges(name, st):
                if not b:
                    if depth == 0:
                        lines.append(f"{indent}{ids(sid, a)} --> finish")
                    continue
                if b not in states:
                    continue
                arrow = f"-.->|{label}|" if label == "catch" else (f"-->|{label}|" if label else "-->")
                lines.append(f"{indent}{ids(sid, a)} {arrow} {ids(sid, b)}")

    scope(machine, 0, "start", "  ")
    return "\n".join(lines) + "\n"


# -- DOT --------------------------------------------------------------------------------------
def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(definition: str | dict) -> str:
    machine = _parse(definition)
    ids, counter = _Ids(), [0]
    lines = ["digraph statemachine {", "  compound=true;", "  node [shape=box, style=rounded, fontname=Helvetica];",
             '  start [shape=circle, label="start"];', '  finish [shape=doublecircle, label="end"];']

    def scope(m: dict, depth: int, entry: str | None, indent: str) -> None:
        counter[0] += 1
        sid = counter[0]
        states = m.get("States") or {}
        if entry and m.get("StartAt") in states:
            lines.append(f"{indent}{entry} -> {ids(sid, m['StartAt'])};")
        for name, st in states.items():
            nid = ids(sid, name)
            if st.get("Type") in GROUP_TYPES:
                lines.append(f"{indent}subgraph cluster_{nid} {{")
                lines.append(f"{indent}  label={_dot_str(name + ' (' + st['Type'] + ')')};")
                lines.append(f"{indent}  {nid} [label={_dot_str(name)}, shape=box3d];")
                for n, br in enumerate(branches(st)):
                    lines.append(f"{indent}  subgraph cluster_{nid}b{n} {{")
                    lines.append(f"{indent}    label={_dot_str('branch ' + str(n + 1))};")
                    scope(br, depth + 1, nid, indent + "    ")
                    lines.append(f"{indent}  }}")
                lines.append(f"{indent}}}")
            else:
                shape = ", shape=diamond" if st.get("Type") == "Choice" else ""
                lines.append(f"{indent}{nid} [label={_dot_str(name)}{shape}];")
        for name, st in states.items():
            for a, b, label in edges(name, st):
                if not b:
                    if depth == 0:
                        lines.append(f"{indent}{ids(sid, a)} -> finish;")
                    continue
                if b not in states:
                    continue
                attrs = []
                if label:
                    attrs.append(f"label={_dot_str(label)}")
                if label == "catch":
                    attrs.append("style=dashed")
                tail = f" [{', '.join(attrs)}]" if attrs else ""
                lines.append(f"{indent}{ids(sid, a)} -> {ids(sid, b)}{tail};")

    scope(machine, 0, "start", "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- SVG --------------------------------------------------------------------------------------
@dataclass
class _Box:
    """A laid-out state (or a scope): size, position relative to its parent, children."""

    name: str
    kind: str
    w: float
    h: float
    x: float = 0.0
    y: float = 0.0
    children: list = field(default_factory=list)   # for a scope: its state boxes; for a group: scopes
    edges: list = field(default_factory=list)      # for a scope: (from, to, label)
    start: str = ""


def _text_width(text: str) -> float:
    return max(110.0, 7.2 * len(text) + 28)


def _ranks(m: dict) -> dict[str, int]:
    """Breadth-first distance from StartAt; states nothing reaches go below the rest."""
    states = m.get("States") or {}
    rank: dict[str, int] = {}
    start = m.get("StartAt")
    frontier = [start] if start in states else []
    if frontier:
        rank[start] = 0
    while frontier:
        nxt = []
        for name in frontier:
            for _, b, _ in edges(name, states[name]):
                if b in states and b not in rank:
                    rank[b] = rank[name] + 1
                    nxt.append(b)
        frontier = nxt
    last = max(rank.values(), default=-1)
    for name in states:
        if name not in rank:
            last += 1
            rank[name] = last
    return rank


def _layout_scope(m: dict, name: str = "") -> _Box:
    states = m.get("States") or {}
    boxes: dict[str, _Box] = {}
    for sname, st in states.items():
        if st.get("Type") in GROUP_TYPES:
            inner = [_layout_scope(b) for b in branches(st)]
            w = sum(b.w for b in inner) + COL_GAP * max(0, len(inner) - 1) + 2 * PAD
            w = max(w, _text_width(sname + " (" + st["Type"] + ")"))
            h = HEADER + max((b.h for b in inner), default=NODE_H) + PAD
            x = (w - (sum(b.w for b in inner) + COL_GAP * max(0, len(inner) - 1))) / 2
            for b in inner:
                b.x, b.y = x, HEADER
                x += b.w + COL_GAP
            boxes[sname] = _Box(sname, st["Type"], w, h, children=inner)
        else:
            boxes[sname] = _Box(sname, st.get("Type", "?"), _text_width(sname), NODE_H)
    rank = _ranks(m)
    rows: dict[int, list[str]] = {}
    for sname in states:
        rows.setdefault(rank[sname], []).append(sname)
    widths = {r: sum(boxes[n].w for n in names) + COL_GAP * (len(names) - 1) for r, names in rows.items()}
    width = max(widths.values(), default=_text_width(name)) + 2 * PAD
    y = PAD
    for r in sorted(rows):
        names = rows[r]
        x = (width - widths[r]) / 2
        row_h = max(boxes[n].h for n in names)
        for n in names:
            b = boxes[n]
            b.x, b.y = x, y + (row_h - b.h) / 2
            x += b.w + COL_GAP
        y += row_h + ROW_GAP
    scope = _Box(name, "scope", width, max(y - ROW_GAP + PAD, NODE_H + 2 * PAD),
                 children=list(boxes.values()), start=m.get("StartAt", ""))
    scope.edges = [e for sname, st in states.items() for e in edges(sname, st)]
    return scope


def _classes(name: str, kind: str, marks: dict[str, str]) -> str:
    mark = marks.get(name)
    return f"state type-{kind}" + (f" {mark}" if mark else "")


def _draw(scope: _Box, ox: float, oy: float, marks: dict, taken: set, out: list, top: bool) -> dict:
    """Append SVG for a scope at (ox, oy); returns {state name: (x, y, w, h)} in absolute units."""
    where: dict[str, tuple[float, float, float, float]] = {}
    for b in scope.children:
        x, y = ox + b.x, oy + b.y
        where[b.name] = (x, y, b.w, b.h)
        label = escape(b.name)
        if b.kind in GROUP_TYPES:
            out.append(f'<g class="{_classes(b.name, b.kind, marks)} group" data-state="{escape(b.name, True)}">'
                       f'<rect x="{x:.1f}" y="{y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="8"/>'
                       f'<text x="{x + 10:.1f}" y="{y + 16:.1f}" class="group-label">{label} '
                       f'<tspan class="kind">({b.kind})</tspan></text></g>')
            for inner in b.children:
                out.append(f'<rect class="branch" x="{x + inner.x:.1f}" y="{y + inner.y:.1f}" '
                           f'width="{inner.w:.1f}" height="{inner.h:.1f}" rx="6"/>')
                where.update(_draw(inner, x + inner.x, y + inner.y, marks, taken, out, False))
        else:
            rx = 18 if b.kind == "Choice" else 6
            out.append(f'<g class="{_classes(b.name, b.kind, marks)}" data-state="{escape(b.name, True)}">'
                       f'<title>{label} ({escape(b.kind)})</title>'
                       f'<rect x="{x:.1f}" y="{y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="{rx}"/>'
                       f'<text x="{x + b.w / 2:.1f}" y="{y + b.h / 2 + 4:.1f}" text-anchor="middle">{label}</text></g>')
    names = {b.name for b in scope.children}
    for a, bname, label in scope.edges:
        if a not in where or (bname and bname not in names):
            continue
        ax, ay, aw, ah = where[a]
        if not bname:
            if not top:
                continue
            bx, by, bw = ox + scope.w / 2 - 10, oy + scope.h - 2, 20
        else:
            bx, by, bw, _ = where[bname]
        x1, y1, x2, y2 = ax + aw / 2, ay + ah, bx + bw / 2, by
        cls = "edge" + (" taken" if (a, bname) in taken else "") + (f" {label}" if label else "")
        if y2 > y1:
            d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{(y1 + y2) / 2:.1f} {x2:.1f},{(y1 + y2) / 2:.1f} {x2:.1f},{y2:.1f}"
        else:   # a loop back up: around the right side
            right = max(ax + aw, bx + bw) + 24
            d = (f"M{ax + aw:.1f},{ay + ah / 2:.1f} C{right:.1f},{ay + ah / 2:.1f} "
                 f"{right:.1f},{by + 18:.1f} {bx + bw:.1f},{by + 18:.1f}")
        out.append(f'<path class="{cls}" d="{d}" marker-end="url(#arrow)"/>')
    return where


def to_svg(definition: str | dict, marks: dict[str, str] | None = None,
           taken: set[tuple[str, str]] | None = None) -> str:
    """The machine as an SVG document. ``marks`` maps state names to a class (visited, running,
    failed); ``taken`` holds the (from, to) transitions the execution made."""
    machine = _parse(definition)
    scope = _layout_scope(machine)
    top, bottom = 40, 44
    width, height = scope.w + 40, scope.h + top + bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="asl-graph" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}">',
           "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
           "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>",
           f"<style>{SVG_STYLE}</style>"]
    cx = width / 2
    out.append(f'<circle class="terminal" cx="{cx:.1f}" cy="16" r="10"/>')
    where = _draw(scope, 20, top, marks or {}, taken or set(), out, True)
    if scope.start in where:
        sx, sy, sw, _ = where[scope.start]
        out.append(f'<path class="edge taken" d="M{cx:.1f},26 L{sx + sw / 2:.1f},{sy:.1f}" marker-end="url(#arrow)"/>')
    out.append(f'<circle class="terminal end" cx="{cx:.1f}" cy="{top + scope.h + 12:.1f}" r="10"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


SVG_STYLE = re.sub(r"\s+", " ", """
.asl-graph { font: 12px sans-serif; }
.state rect { fill: #fff; stroke: #8a94a6; stroke-width: 1.2; }
.state.group > rect { fill: #f6f8fb; stroke-dasharray: 4 3; }
.branch { fill: #fff; stroke: #c9d1dd; }
.state.visited > rect { fill: #dff3e4; stroke: #2f9e44; }
.state.running > rect { fill: #dbe9ff; stroke: #1c64f2; stroke-width: 2.5; }
.state.failed > rect { fill: #ffe3e3; stroke: #e03131; stroke-width: 2.5; }
.edge { fill: none; stroke: #9aa4b2; stroke-width: 1.3; }
.edge.catch { stroke-dasharray: 5 3; }
.edge.taken { stroke: #2f9e44; stroke-width: 2; }
.terminal { fill: #495057; }
.group-label { font-weight: 600; }
.kind { fill: #6c757d; font-weight: 400; }
marker path { fill: #6c757d; }
""").strip()

FORMATS = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg}


def render(definition: str | dict, fmt: str) -> str:
    """The definition in ``fmt`` (mermaid, dot or svg)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown graph format {fmt!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[fmt](definition)
