"""Turnout's version. pyproject.toml is the one place it is written; the installed package's metadata carries
it to `turnout --version`, `/healthz` and the `turnout_build_info` metric."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("turnout")
except PackageNotFoundError:  # run from a source tree that was never installed (pip install -e . installs it)
    __version__ = "0+unknown"
