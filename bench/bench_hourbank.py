"""HourBank end to end: N service requests through the whole lifecycle on SQLite files, on the
virtual clock (a 48 h auto-confirmation costs nothing), then the ledger audit.

    python -m bench.bench_hourbank [--requests 1000] [--dir /tmp/hourbank-bench]

The mix: 70 % paid (a tenth after a counter-offer, a tenth auto-confirmed after 48 h), 10 %
rejected, 10 % expired, 10 % disputed and settled by an admin. Wall time covers starting,
every answer, every handler and every commit, on SQLite files for both the engine and the bank.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from statelang.workflows.hourbank.sandbox import HourBankSandbox

MEMBERS = 200


def run(n: int, directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    for f in ("bank.db", "flows.db"):
        (directory / f).unlink(missing_ok=True)
    sb = HourBankSandbox(bank_db=f"sqlite:///{directory / 'bank.db'}",
                         engine_db=f"sqlite:///{directory / 'flows.db'}")
    for i in range(MEMBERS):
        sb.add_member(f"m{i}", 40, response_hours=2 + i % 71)
        sb.add_service(f"s{i}", f"m{i}")
    a = sb.actions
    t0 = time.perf_counter()
    reqs = []
    for k in range(n):
        # a different provider each round, so no request duplicates a pending one
        requester, provider = f"m{k % MEMBERS}", f"m{(k % MEMBERS + 1 + k // MEMBERS) % MEMBERS}"
        _, rid = sb.request(requester, provider, f"s{provider[1:]}", 1 + k % 3, name=f"r{k}")
        reqs.append((k, rid, requester, provider))
    for k, rid, req, prov in reqs:
        kind = k % 10
        if kind == 7:
            a.provider_respond(rid, prov, "REJECT")
        elif kind == 8:
            continue                              # left to expire
        elif kind == 1:
            a.provider_respond(rid, prov, "COUNTER_OFFER", hours=1.5)
            sb.drain()
            a.negotiate(rid, req, "ACCEPT")
        else:
            a.provider_respond(rid, prov, "ACCEPT")
        sb.drain()
        if kind in (7,):
            continue
        a.mark_started(rid, prov)
        sb.drain()
        a.confirm_start(rid, req)
        sb.drain()
        a.mark_completed(rid, prov)
        sb.drain()
        if kind == 9:
            did = a.raise_dispute(rid, req, "not finished")
            sb.drain()
            a.admin_decide(did, "admin", "PARTIAL_REFUND", 0.5)
        elif kind != 2:
            a.confirm_completion(rid, req)      # kind 2: auto-confirmed after 48 h
        sb.drain()
    sb.finish()                                  # expiries and auto-confirmations fall due
    wall = time.perf_counter() - t0
    statuses: dict[str, int] = {}
    for _, rid, _, _ in reqs:
        st = sb.row(rid).status
        statuses[st] = statuses.get(st, 0) + 1
    audit = sb.ledger.audit()
    sb.engine.shutdown()
    return {"requests": n, "wall_seconds": round(wall, 2), "requests_per_second": round(n / wall, 1),
            "statuses": statuses, "ledger_discrepancies": len(audit["discrepancies"]),
            "minted_hours": audit["minted"] / 100, "held_hours": audit["held"] / 100}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--dir", type=Path, default=None)
    args = p.parse_args(argv)
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="hourbank-bench-"))
    try:
        r = run(args.requests, tmp)
    finally:
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    for k, v in r.items():
        print(f"{k:>22}: {v}")
    ok = r["ledger_discrepancies"] == 0 and r["minted_hours"] == r["held_hours"]
    print(f"{'invariant':>22}: {'holds' if ok else 'BROKEN'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
