"""The previous traffic-control design (token buckets with ``burst`` and a ``jitter`` allowance),
as a whole bmctl package extracted from git, for side-by-side benchmark rows.

The budget ledger replaced it at the commit after :data:`OLD_COMMIT`. Rather than copying old
modules into bench/, a script extracts ``bmctl/`` at that commit into a temporary folder
(``git archive``) and runs a worker there in a subprocess whose ``BMCTL_BENCH_TREE`` points at
it: the worker's ``sys.path`` then starts with that folder, so ``import bmctl`` is the old
package (the venv's editable install of the current one comes later on the path). Everything
else the worker uses (SimWorld, the sandbox marketplace, ProbeRun, update-price's
``apply_price_orders``) is unchanged between the two commits, so a worker written once runs in
both trees.

    with old_tree() as root:            # None when git or the commit is unavailable
        out = run_worker(root, "bench/makespan.py", ["--worker", spec])
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from typing import Iterator, Sequence

#: The last commit of the token-bucket design (``git show 8e18beb:bmctl/traffic/buckets.py``).
OLD_COMMIT = "8e18beb"
#: Environment variable a worker reads to put another bmctl tree first on ``sys.path``.
TREE_ENV = "BMCTL_BENCH_TREE"

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def old_tree(commit: str = OLD_COMMIT) -> Iterator[str | None]:
    """A temporary folder holding ``bmctl/`` at ``commit`` (removed afterwards), or ``None``
    (with a note on stderr) when it cannot be extracted (no git, shallow clone...)."""
    try:
        blob = subprocess.run(["git", "archive", "--format=tar", commit, "bmctl"], cwd=REPO,
                              capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        print(f"note: cannot extract bmctl at {commit} ({error}); old-design rows skipped",
              file=sys.stderr)
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=f"bmctl-{commit}-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp, filter="data")
        yield tmp


def run_worker(tree: str, script: str, args: Sequence[str], timeout: float = 3600) -> str:
    """Run ``python SCRIPT ARGS`` with ``tree`` first on the path; returns its stdout."""
    env = dict(os.environ, **{TREE_ENV: tree})
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, os.path.join(REPO, script), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {script} {' '.join(args)} in {tree} failed:\n{proc.stderr[-4000:]}")
    return proc.stdout


def bmctl_path() -> str:
    """Where bmctl is imported from: the tree named by ``BMCTL_BENCH_TREE``, else this repo."""
    return os.environ.get(TREE_ENV) or REPO
