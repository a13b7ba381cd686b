"""Start-up: `bmctl --version` / `bmctl --help` against `python -c "import typer"` and `python -c pass`.

Each command runs ``--runs`` times (default 30), interleaved round-robin so that machine noise
hits all of them alike; wall time per run with ``time.perf_counter`` around ``subprocess.run``
(output to a pipe, ``NO_COLOR=1``); medians reported, with the ratio to ``import typer``.
Children run without ``PYTHONDONTWRITEBYTECODE`` (set on some machines, this one included), so
that the warm-up leaves bmctl's bytecode as an installed copy has it (pip compiles it at
install) and as typer's already is: with the variable, every run of a source checkout compiles
bmctl's modules again (about 5 ms for `--help`) while typer's site-packages bytecode is read.
bmctl is run both as ``python -m bmctl`` and as the installed ``bmctl`` console script.
Then ``python -X importtime -m bmctl --version`` (and ``--help``) lists the heaviest imports and
checks that requests / rich / sqlite_utils are not among them.

    python bench/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, table  # noqa: E402

PY = sys.executable
HEAVY = ("requests", "rich", "sqlite_utils", "urllib3", "sqlite3", "click", "typer")


def commands() -> list[tuple[str, list[str]]]:
    cmds = [
        ('python -c pass', [PY, "-c", "pass"]),
        ('python -c "import typer"', [PY, "-c", "import typer"]),
        ("python -m bmctl --version", [PY, "-m", "bmctl", "--version"]),
        ("python -m bmctl --help", [PY, "-m", "bmctl", "--help"]),
    ]
    script = shutil.which("bmctl")
    if script:
        cmds += [("bmctl --version (console script)", [script, "--version"]),
                 ("bmctl --help (console script)", [script, "--help"])]
    return cmds


def child_env() -> dict[str, str]:
    """The children's environment: no colour, bytecode written and read as when installed."""
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def importtime(args: list[str], top: int = 12) -> tuple[list[tuple[int, int, str]], set[str]]:
    env = child_env()
    proc = subprocess.run([PY, "-X", "importtime", "-m", "bmctl", *args], capture_output=True,
                          text=True, env=env)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # 1 = imported by the program itself
        rows.append((int(cum_us), int(self_us), name.strip(), depth))
    loaded = {name.split(".")[0] for _, _, name, _ in rows}
    # Top-level and first-level imports only (nested ones are inside their parents' totals).
    shallow = sorted((r for r in rows if r[3] <= 2), reverse=True)[:top]
    return [(c, s, ("· " * (d - 1)) + n) for c, s, n, d in shallow], loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    header(f"Start-up ({args.runs} runs each, interleaved; wall-clock medians)")
    cmds = commands()
    env = child_env()
    for _, argv in cmds:  # warm the page cache and .pyc files once
        subprocess.run(argv, capture_output=True, env=env)
    times: dict[str, list[float]] = {label: [] for label, _ in cmds}
    for _ in range(args.runs):
        for label, argv in cmds:
            t0 = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, env=env)
            times[label].append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"{label} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    base = statistics.median(times['python -c "import typer"'])
    rows = []
    for label, values in times.items():
        med = statistics.median(values)
        rows.append([label, f"{med * 1000:.1f}", f"{min(values) * 1000:.1f}", f"{max(values) * 1000:.1f}",
                     f"{med / base:.2f}×"])
    print(table(["command", "median ms", "min ms", "max ms", "× import typer"], rows))
    print()
    worst = max(statistics.median(v) for k, v in times.items() if "bmctl" in k) / base
    print(f"goal ≤ 1.2× import typer: {'met' if worst <= 1.2 else 'MISSED'} (worst bmctl command {worst:.2f}×)")
    for flag in ("--version", "--help"):
        top, loaded = importtime([flag])
        heavy = sorted(m for m in HEAVY if m in loaded)
        print()
        print(f"`python -X importtime -m bmctl {flag}`: heaviest imports (cumulative µs, top level and "
              f"one level down); loaded of {', '.join(HEAVY)}: {', '.join(heavy) or 'none'}")
        print(table(["cumulative µs", "self µs", "module"], [[c, s, n] for c, s, n in top]))


if __name__ == "__main__":
    main()
