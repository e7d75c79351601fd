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


def run(name: str, argv: list[str] | None = None) -> bool:
    """Import `bench.<name>` and call its `main()` (awaited when async); False when it failed.
    A `main` that takes a parameter gets `argv` (its own options; none = its defaults)."""
    module = importlib.import_module(f"bench.{name}")
    fn = getattr(module, "main", None)
    if fn is None:
        return True  # a helper module, not a bench
    print(f"== bench.{name}", flush=True)
    started = time.perf_counter()
    try:
        params = inspect.signature(fn).parameters
        result = fn(list(argv or [])) if params else fn()
        if inspect.isawaitable(result):
            asyncio.run(result)  # type: ignore[arg-type]
    except Exception as exc:  # one broken bench must not hide the others' numbers
        print(f"!! bench.{name} failed: {type(exc).__name__}: {exc}", flush=True)
        return False
    print(f"== bench.{name} done in {time.perf_counter() - started:.1f} s\n", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    """`python -m bench` runs every bench; `python -m bench a b` runs those; `python -m bench a --opt x`
    passes the options after the (single) name to that bench's main."""
    args = sys.argv[1:] if argv is None else argv
    known = discover()
    names = [a for a in args if not a.startswith("-")]
    if names and names[0] not in known:
        print(f"unknown bench {names[0]}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    if len(names) > 1 and all(n in known for n in names) and len(names) == len(args):
        return 0 if all([run(n) for n in names]) else 1
    if names:
        return 0 if run(names[0], args[args.index(names[0]) + 1 :]) else 1
    return 0 if all([run(n) for n in known]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
