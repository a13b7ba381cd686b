"""Run every benchmark in sequence (never in parallel: they would perturb each other).

    python bench/run_all.py                  # every script, full runs; prints every table
    python bench/run_all.py --quick          # short runs (--quick to the scripts that take it)
    python bench/run_all.py cron.py makespan.py   # just these, in this order
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["rate.py", "makespan.py", "wire.py", "cron.py", "ledger_cost.py", "overhead.py", "log_writer.py",
           "startup.py"]


def takes_quick(name: str) -> bool:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return '"--quick"' in f.read()


if __name__ == "__main__":
    args = sys.argv[1:]
    quick = "--quick" in args
    names = [a for a in args if a != "--quick"] or SCRIPTS
    failed = []
    for name in names:
        extra = ["--quick"] if quick and takes_quick(name) else []
        print(f"\n$ python bench/{name} {' '.join(extra)}".rstrip(), flush=True)
        if subprocess.run([sys.executable, os.path.join(HERE, name), *extra]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1 if failed else 0)
