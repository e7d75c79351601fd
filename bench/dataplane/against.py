"""A second source tree for `--against REV`: the same bench measures `turnout serve` at another commit.

This machine's throughput moves by ±15 % between few-second windows, so a change is judged best against its
baseline in the same interleaved rounds, not against figures from another run. The commit is checked out as a
temporary git worktree (no effect on the working tree) and removed afterwards; its processes run with the
worktree as their working directory, which puts its packages ahead of the installed ones.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["worktree"]


@contextmanager
def worktree(repo: Path, rev: str) -> Iterator[tuple[Path, str]]:
    """Check `rev` out into a temporary worktree of `repo`; yields (its path, its short commit)."""

    def git(*args: str, cwd: Path = repo) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"--against {rev}: git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    sha = git("rev-parse", "--short", "--verify", f"{rev}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="turnout-against-") as tmp:
        path = Path(tmp) / sha
        git("worktree", "add", "--detach", "--quiet", str(path), sha)
        try:
            yield path, sha
        finally:
            git("worktree", "remove", "--force", str(path))
