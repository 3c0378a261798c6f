"""Cold start: ``statelang run`` of a three-state machine against ``python -c "import boto3"``.

    python -m bench.bench_startup [--repeat 15]

Each sample is a fresh process. The three commands are run interleaved (a, b, c, a, b, c, ...)
so that a busy moment of the machine falls on all of them alike; the figure is each command's
median wall time, and the point is the ratio statelang run / import boto3 measured in this run
(issue 16 asks that it be below 1). ``python -c pass`` is the floor both stand on.

Bytecode: an installed package is compiled at install time, while a checkout run with
PYTHONDONTWRITEBYTECODE=1 compiles every module on every start. So every command runs with its
bytecode cached in a private PYTHONPYCACHEPREFIX (written by the warm-up run), as an installed
statelang and boto3 would; ``--no-bytecode`` measures the compile-every-time case instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MACHINE = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "Next": "B"},
                                      "B": {"Type": "Pass", "Next": "C"}, "C": {"Type": "Succeed"}}}


def _time(cmd: list[str], cwd: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--no-bytecode", action="store_true", help="compile every module on every start")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="statelang-startup-")
    env = dict(os.environ)
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
    Path(tmp, "small.asl.json").write_text(json.dumps(MACHINE))
    exe = shutil.which("statelang", path=str(Path(sys.executable).parent)) or "statelang"
    commands = {"statelang run": [exe, "run", "small.asl.json"],
                "import boto3": [sys.executable, "-c", "import boto3"],
                "python -c pass": [sys.executable, "-c", "pass"]}
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for cmd in commands.values():            # warm the OS file cache once; not counted
        _time(cmd, tmp, env)
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            samples[name].append(_time(cmd, tmp, env))
    med = {k: statistics.median(v) for k, v in samples.items()}
    out = {"repeat": args.repeat, "bytecode_cached": not args.no_bytecode, "median_ms": {k: round(v * 1000, 1) for k, v in med.items()},
           "ratio_run_to_boto3": round(med["statelang run"] / med["import boto3"], 3)}
    print(json.dumps(out, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
