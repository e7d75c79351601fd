"""Data-plane bench: `python -m bench.dataplane [SECONDS]` (see run.py for what it measures)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    from bench.dataplane.run import main as run

    run(argv)


__all__ = ["main"]
