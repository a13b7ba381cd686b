"""The repository stands on its own: Back Market's OpenAPI document is vendored unedited, no
code resolves a path outside the repository, and a clone alone in an empty folder runs the
conformance tests."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENDORED = REPO / "vendor" / "backmarket" / "openapi.yml"


def test_the_vendored_openapi_is_the_published_one_unedited() -> None:
    digest = hashlib.sha256(VENDORED.read_bytes()).hexdigest()
    note = (REPO / "vendor" / "backmarket" / "README.md").read_text(encoding="utf-8")
    assert digest in note, "openapi.yml changed: vendor a publication and record its hash"


_PARENTS = re.compile(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\]")
_UP = re.compile(r"""Path\([^)]*["']\.\.[/\\"']""")


def test_nothing_in_the_repository_reads_outside_it() -> None:
    """Every path a module builds from its own location stays inside the repository, and no
    path is built from a literal that climbs out of it (one starting with two dots)."""
    offenders = []
    for folder in ("bmctl", "tests", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for match in _PARENTS.finditer(text):
                target = path.resolve().parents[int(match.group(1))]
                if target != REPO and REPO not in target.parents:
                    offenders.append(f"{path.relative_to(REPO)}: {match.group(0)}")
            offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in _UP.finditer(text)]
    assert offenders == []


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="needs git and a git checkout")
def test_a_clone_into_an_empty_folder_runs_the_conformance_tests(tmp_path: Path) -> None:
    clone = tmp_path / "empty" / "bmctl"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    assert list(clone.parent.iterdir()) == [clone]  # nothing beside it to lean on
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMCTL_")}
    env["PYTHONPATH"] = str(clone)  # the clone's own package, not this checkout's
    probe = subprocess.run([sys.executable, "-c", "import bmctl; print(bmctl.__file__)"], cwd=clone,
                           env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.strip().startswith(str(clone))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/api/test_conformance.py",
         "tests/sandbox/test_app.py"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
