"""One version, written once in pyproject.toml, shown by `turnout --version` and heading the CHANGELOG."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from controlplane.cli import main
from controlplane.version import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_version_comes_from_pyproject() -> None:
    assert __version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_turnout_version_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"turnout {__version__}"


def test_changelog_has_a_section_for_this_version() -> None:
    """The CHANGELOG is kept from now on: a version bump without its entry fails here."""
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert headings[0] == "Unreleased"
    assert __version__ in headings


def test_license_is_the_apache_license_pyproject_names() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    assert "Apache License\n                           Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
