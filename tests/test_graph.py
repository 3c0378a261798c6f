"""ASL drawn as Mermaid, DOT and SVG: every state appears, Parallel and Map become nested groups,
edges follow Next, Choices, Default and Catch, and marks become classes on the SVG shapes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from statelang.server.graph import render, to_dot, to_mermaid, to_svg

MACHINE = {"StartAt": "Check", "States": {
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Fan"}],
              "Default": "Nope"},
    "Fan": {"Type": "Parallel", "Next": "Each", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Nope"}],
            "Branches": [{"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                         {"StartAt": "Right \"quoted\"", "States": {"Right \"quoted\"": {"Type": "Pass", "End": True}}}]},
    "Each": {"Type": "Map", "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": True}}},
             "Next": "Done"},
    "Done": {"Type": "Succeed"},
    "Nope": {"Type": "Fail", "Error": "No"}}}
SVG_NS = "{http://www.w3.org/2000/svg}"


def test_mermaid_has_subgraphs_and_labelled_edges():
    text = to_mermaid(MACHINE)
    assert text.startswith("flowchart TD")
    assert 'subgraph' in text and '"Fan (Parallel)"' in text and '"Each (Map)"' in text
    assert "#quot;quoted#quot;" in text
    assert "-->|choice|" in text and "-->|default|" in text and "-.->|catch|" in text
    assert text.count("subgraph") == text.count("\n  end") + text.count("\n    end") + text.count("\n      end")


def test_dot_has_clusters():
    text = to_dot(MACHINE)
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    assert text.count("subgraph cluster_") == 5   # Fan, its two branches, Each, its processor
    assert 'label="Right \\"quoted\\""' in text
    assert "style=dashed" in text
    assert text.count("{") == text.count("}")


def test_svg_is_well_formed_and_marks_states():
    svg = to_svg(MACHINE, {"Check": "visited", "Left": "running", "Nope": "failed"}, {("Check", "Nope")})
    root = ET.fromstring(svg)
    states = {g.get("data-state"): g.get("class") for g in root.iter(SVG_NS + "g") if g.get("data-state")}
    assert set(states) == {"Check", "Fan", "Left", 'Right "quoted"', "Each", "Item", "Done", "Nope"}
    assert "visited" in states["Check"] and "running" in states["Left"] and "failed" in states["Nope"]
    assert "group" in states["Fan"] and "group" in states["Each"]
    taken = [p for p in root.iter(SVG_NS + "path") if "taken" in (p.get("class") or "")]
    assert len(taken) == 2   # the start arrow and Check -> Nope


def test_nested_states_are_drawn_inside_their_group():
    root = ET.fromstring(to_svg(MACHINE))
    boxes = {}
    for g in root.iter(SVG_NS + "g"):
        rect = g.find(SVG_NS + "rect")
        if g.get("data-state") and rect is not None:
            boxes[g.get("data-state")] = [float(rect.get(k)) for k in ("x", "y", "width", "height")]
    fx, fy, fw, fh = boxes["Fan"]
    for inner in ("Left", 'Right "quoted"'):
        x, y, w, h = boxes[inner]
        assert fx < x and x + w < fx + fw and fy < y and y + h < fy + fh
    assert boxes["Check"][1] < boxes["Fan"][1] < boxes["Each"][1]


def test_render_rejects_what_is_not_a_machine():
    with pytest.raises(ValueError):
        render({"States": []}, "svg")
    with pytest.raises(ValueError):
        render(MACHINE, "png")


def test_graph_reads_an_asl_yaml_file_as_run_and_validate_do(tmp_path):
    """`statelang graph m.asl.yaml` failed with "Expecting value: line 1 column 1" where `run` and
    `validate` read the same file: it now reads definitions through the same loader."""
    from click.testing import CliRunner

    from statelang.cli import main

    path = tmp_path / "m.asl.yaml"
    path.write_text("StartAt: A\nStates:\n  A: {Type: Pass, Next: B}\n  B: {Type: Succeed}\n")
    out = CliRunner().invoke(main, ["graph", str(path)])
    assert out.exit_code == 0, out.output
    assert 's0["A"]' in out.output and 's1["B"]' in out.output and "s0 --> s1" in out.output


def test_graph_command(tmp_path):
    path = tmp_path / "m.asl.json"
    path.write_text(json.dumps(MACHINE))
    exe = Path(sys.executable).parent / "statelang"
    for fmt, start in (("mermaid", "flowchart"), ("dot", "digraph"), ("svg", "<svg")):
        out = subprocess.run([str(exe), "graph", str(path), "--format", fmt], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(start)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = subprocess.run([str(exe), "graph", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
