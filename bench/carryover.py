"""Budget carry-over: two real `bmctl competitors` runs back to back, zero 429s across the boundary.

A helper process (bench/_sandbox_server.py) serves the sandbox on a free loopback port with a
tight competitors limit (default 4 per 3 s, sliding window, 429 + 10 s block on a breach); bmctl is
configured with the matching bucket through ``--config`` (``[limits.competitors] limit = 4,
window = 3.0, burst = 4``: a full burst, so that a run that starts with full buckets right after
another one would breach the server's window). Each scenario starts a fresh server, then runs ``bmctl competitors ID x K`` twice
as separate processes, the second starting as soon as the first exits:

- shared db: both runs use one temp ``--db``; the second run charges its buckets from the first
  run's request log (the contract's carry-over).
- separate dbs (control): each run has its own new database, so the second run starts with full
  buckets -- what carry-over prevents.

Requests and 429s are counted by the server (per run: by the time the first process exited);
gap = first request of run 2 on the wire - last request of run 1 on the wire.

    python bench/carryover.py [--ids 6] [--limit 4] [--window 3] [--burst 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def bmctl_argv() -> list[str]:
    script = shutil.which("bmctl")
    return [script] if script else [sys.executable, "-m", "bmctl"]


def scenario(name: str, shared: bool, k: int, limit: int, window: float, burst: int, tmp: str) -> list[list[object]]:
    log = os.path.join(tmp, f"{name}.log")
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "_sandbox_server.py"), log, str(limit),
                               str(window)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = server.stdout.readline().split()
        assert ready and ready[0] == "READY", ready
        url, ids = ready[1], ready[2:2 + k]
        config = os.path.join(tmp, f"{name}.toml")
        with open(config, "w") as f:
            f.write(f"[limits.competitors]\nlimit = {limit}\nwindow = {window}\nburst = {burst}\n")
        os.chmod(config, 0o600)
        env = dict(os.environ, BMCTL_TOKEN="sandbox", NO_COLOR="1",
                   BMCTL_USER_AGENT="BM-bench-bmctl;bench@example.invalid")
        ends, codes = [], []
        for run in (1, 2):
            db = os.path.join(tmp, f"{name}.db" if shared else f"{name}-{run}.db")
            argv = [*bmctl_argv(), "--config", config, "--base-url", url, "--db", db, "--format", "json",
                    "competitors", *ids]
            proc = subprocess.run(argv, env=env, capture_output=True, text=True)
            ends.append(time.monotonic())
            codes.append(proc.returncode)
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    entries = []
    with open(log) as f:
        for line in f:
            mono, _wall, status, _path = line.split(maxsplit=3)
            entries.append((float(mono), int(status)))
    run1 = [e for e in entries if e[0] <= ends[0]]
    run2 = [e for e in entries if e[0] > ends[0]]
    gap = run2[0][0] - run1[-1][0] if run1 and run2 else float("nan")
    label = "shared --db (carry-over)" if shared else "separate dbs (control)"
    rows = []
    for run, got, code in ((1, run1, codes[0]), (2, run2, codes[1])):
        rows.append([label, run, len(got), sum(1 for _, s in got if s == 429), code,
                     f"{gap:.2f}" if run == 2 else ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=6, help="listing ids per run")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--burst", type=int, default=4, help="client bucket burst (server: sliding window)")
    args = parser.parse_args()
    header(f"Budget carry-over (two `bmctl competitors` runs back to back; competitors limit "
           f"{args.limit}/{args.window:g} s on server and client, client burst {args.burst})")
    with tempfile.TemporaryDirectory() as tmp:
        rows = scenario("shared", True, args.ids, args.limit, args.window, args.burst, tmp)
        rows += scenario("separate", False, args.ids, args.limit, args.window, args.burst, tmp)
    print(table(["scenario", "run", "requests (server)", "429s (server)", "exit code",
                 "gap run1→run2 on the wire s"], rows))
    print()
    shared_429 = sum(r[3] for r in rows if r[0].startswith("shared"))
    print(f"goal zero 429s across the boundary (shared db): {'met' if shared_429 == 0 else 'MISSED'}")


if __name__ == "__main__":
    main()
