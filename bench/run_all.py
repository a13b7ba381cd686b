"""Run every benchmark in sequence (never in parallel: they would perturb each other).

    python bench/run_all.py            # ~8 minutes on 2 cores; prints every table
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["rate.py", "makespan.py", "overhead.py", "log_writer.py", "startup.py", "carryover.py"]

if __name__ == "__main__":
    failed = 0
    for name in sys.argv[1:] or SCRIPTS:
        print(f"\n$ python bench/{name}", flush=True)
        failed += subprocess.run([sys.executable, os.path.join(HERE, name)]).returncode != 0
    sys.exit(1 if failed else 0)
