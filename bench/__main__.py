"""Run every bench module that defines `main()`: `python -m bench [name ...]`."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import time
from pathlib import Path


def discover() -> list[str]:
    """Names of `bench/*.py` modules and `bench/*/__init__.py` packages, sorted."""
    here = Path(__file__).parent
    names = [p.stem for p in here.glob("*.py") if not p.stem.startswith("_")]
    names += [p.parent.name for p in here.glob("*/__init__.py") if not p.parent.name.startswith(("_", "."))]
    return sorted(set(names))


def run(name: str) -> bool:
    """Import `bench.<name>` and call its `main()` (awaited when async); False when it failed."""
    module = importlib.import_module(f"bench.{name}")
    fn = getattr(module, "main", None)
    if fn is None:
        return True  # a helper module, not a bench
    print(f"== bench.{name}", flush=True)
    started = time.perf_counter()
    try:
        params = inspect.signature(fn).parameters
        result = fn([]) if params else fn()  # benches taking argv get none: their defaults
        if inspect.isawaitable(result):
            asyncio.run(result)  # type: ignore[arg-type]
    except Exception as exc:  # one broken bench must not hide the others' numbers
        print(f"!! bench.{name} failed: {type(exc).__name__}: {exc}", flush=True)
        return False
    print(f"== bench.{name} done in {time.perf_counter() - started:.1f} s\n", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    known = discover()
    unknown = [a for a in args if a not in known]
    if unknown:
        print(f"unknown bench {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    ok = all([run(name) for name in (args or known)])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
