"""The lease protocol's Promela model (statelang/runtime/lease_protocol.pml), checked by spin.

The model is the protocol of engine.py and the stores (claim, renew, fence, commit, takeover,
crash, stall) with its three guarantees as checked properties: no step committed twice, no commit
by a writer whose lease was taken (safety: `pan` over the whole state space), and the execution
completes while a worker stays alive (liveness: `pan -a -f`, an acceptance cycle search under weak
fairness). Each check is also run on a variant that must break it, so that a passing check means
something: without the fence spin finds a step committed twice.

spin and gcc are Debian packages (`apt-get install spin`); `.ci/run` installs spin and sets
STATELANG_REQUIRE_SPIN, so that CI fails rather than skips when they are missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from statelang.runtime.engine import Engine
from statelang.runtime.leases import LeaseKeeper
from statelang.runtime.storage import MemoryStore, Store
from statelang.store.sql import SqlStore

MODEL = Path(__file__).resolve().parent.parent / "statelang" / "runtime" / "lease_protocol.pml"
MAX_DEPTH = 200_000


@dataclass(frozen=True)
class Verdict:
    """What `pan` reported: the number of errors, and its whole output for the failure message."""

    errors: int
    output: str


def _require_tools() -> None:
    missing = [tool for tool in ("spin", "gcc") if shutil.which(tool) is None]
    if not missing:
        return
    why = f"{' and '.join(missing)} not found on PATH (Debian: apt-get install spin gcc)"
    if os.environ.get("STATELANG_REQUIRE_SPIN"):
        pytest.fail(f"STATELANG_REQUIRE_SPIN is set, but {why}")
    pytest.skip(f"the lease model is checked with spin and gcc: {why}")


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{out}"
    return out


def check(workdir: Path, *defines: str, liveness: bool = False) -> Verdict:
    """Generate the verifier for the model with `defines` (spin -a), compile it and run it: a
    safety search (assertions, invalid end states) without the LTL claim, or the acceptance
    search of the `progress` claim under weak fairness."""
    _require_tools()
    spin_defines = [f"-D{d}" for d in defines]
    _run(["spin", *spin_defines, "-a", str(MODEL)], workdir)
    cflags = [] if liveness else ["-DSAFETY", "-DNOCLAIM"]
    _run(["gcc", "-O0", *cflags, "-o", "pan", "pan.c"], workdir)
    pan_args = ["-a", "-f"] if liveness else []
    done = subprocess.run(["./pan", f"-m{MAX_DEPTH}", *pan_args], cwd=workdir, capture_output=True,
                          text=True, timeout=300)
    out = done.stdout + done.stderr
    found = re.search(r"errors: (\d+)", out)
    assert found, f"pan printed no verdict:\n{out}"
    # A search cut off by its depth bound proves nothing about the states beyond it.
    assert "max search depth too small" not in out, out
    return Verdict(int(found.group(1)), out)


# -- the protocol as implemented: safety --------------------------------------------------------

@pytest.mark.parametrize("defines", [
    ("W=2", "N=2", "FAULTS=2"),   # two workers, three steps' worth of crashes and stalls
    ("W=3", "N=2", "FAULTS=1"),   # three workers, a crash or a stall
    ("W=3", "N=1", "FAULTS=2"),   # three workers, two crashes: takeover of a takeover
], ids=lambda d: "-".join(d))
def test_no_step_is_committed_twice_and_no_stale_writer_commits(tmp_path, defines):
    verdict = check(tmp_path, *defines)
    assert verdict.errors == 0, verdict.output
    assert "Full statespace search" in verdict.output


# -- liveness ------------------------------------------------------------------------------------

@pytest.mark.parametrize("defines", [("W=2", "N=2"), ("W=3", "N=1")], ids=lambda d: "-".join(d))
def test_execution_completes_while_a_worker_lives(tmp_path, defines):
    """Heartbeats come from a thread of their own (a worker is silent only when it crashed or
    stalled): crashes of all workers but one and stalls never leave the execution without an
    owner for good."""
    verdict = check(tmp_path, *defines, liveness=True)
    assert verdict.errors == 0, verdict.output


def test_with_heartbeats_only_between_rounds_two_live_workers_can_take_turns_for_ever(tmp_path):
    """The earlier design, heartbeats written only between rounds of run_until_idle: a worker in a
    long step looks dead, another takes the execution over, the first one's commit is fenced, and
    the two can take it from each other for ever (an acceptance cycle with no crash or stall)."""
    verdict = check(tmp_path, "W=2", "FAULTS=0", "BEAT_GAP_IN_STEP", liveness=True)
    assert verdict.errors >= 1 and "acceptance cycle" in verdict.output, verdict.output


# -- the checks can fail -------------------------------------------------------------------------

def test_without_the_fence_spin_finds_a_step_committed_twice(tmp_path):
    verdict = check(tmp_path, "NO_FENCE", "CHECK=1")
    assert verdict.errors >= 1, verdict.output
    assert "assertion violated (commits[(base+1)]==1)" in verdict.output


def test_without_the_fence_spin_finds_a_commit_by_a_writer_whose_lease_was_taken(tmp_path):
    verdict = check(tmp_path, "NO_FENCE", "CHECK=2")
    assert verdict.errors >= 1, verdict.output
    assert "assertion violated  !(taken[me])" in verdict.output


def test_without_the_kick_a_crash_strands_the_execution(tmp_path):
    """Without the message Engine._flush adds for the invocations a commit leaves in flight, a
    worker killed while they run leaves a lease nobody renews on an execution nothing makes due:
    spin finds the cycle in which it never completes. With no crash it still completes."""
    verdict = check(tmp_path, "NO_KICK", liveness=True)
    assert verdict.errors >= 1 and "acceptance cycle" in verdict.output, verdict.output
    assert check(tmp_path, "NO_KICK", "FAULTS=0", liveness=True).errors == 0


@pytest.mark.parametrize("variant", ["STOP_WRITER", "POISON"])
def test_an_unfenced_writer_would_commit_a_step_twice(tmp_path, variant):
    """A stop request or a poisoned step's failure committed without the lease (fence=None), as
    the engine once did: spin finds the step committed twice. Both now lease the execution first
    (Store.claim_one) and commit fenced, the path the model's workers take."""
    verdict = check(tmp_path, variant)
    assert verdict.errors >= 1 and "assertion violated" in verdict.output, verdict.output


# -- the model names real code -------------------------------------------------------------------

def test_every_function_the_model_names_exists():
    """The model says which function each of its statements stands for; a renamed function must
    be renamed in the model too."""
    from statelang.runtime import poison, worker
    owners = {"Engine": Engine, "LeaseKeeper": LeaseKeeper, "Store": Store, "MemoryStore": MemoryStore,
              "SqlStore": SqlStore, "worker": worker, "poison": poison}
    named = set(re.findall(r"\b(Engine|LeaseKeeper|Store|MemoryStore|SqlStore|worker|poison)\.(\w+)",
                           MODEL.read_text()))
    assert len(named) >= 12
    missing = sorted(f"{cls}.{name}" for cls, name in named if not hasattr(owners[cls], name))
    assert not missing, f"the model names functions that do not exist: {missing}"
