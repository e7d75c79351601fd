"""docs/configuration.md is generated from the config models and must stay in step with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controlplane.docgen import DOC_PATH, main, render, rows

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_matches_the_models() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `python -m controlplane.docgen`"
    )


def test_every_key_has_a_type_a_default_and_a_meaning() -> None:
    missing = [r.path for r in rows() if not r.description]
    assert not missing, f"add description= to these fields (or a line in controlplane/docgen.py _MEANING): {missing}"
    assert all(r.type and r.default for r in rows())


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n", encoding="utf-8")
    assert main(["--check", "--out", str(stale)]) == 1
    assert main(["--out", str(stale)]) == 0 and main(["--check", "--out", str(stale)]) == 0


def _paths(node: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if prefix == "probes.kinds":  # a map: its keys are names, not config keys
                out |= _paths(v, "probes.kinds.<name>")
                continue
            key = f"{prefix}.{k}" if prefix else str(k)
            out.add(key)
            out |= _paths(v, key)
    elif isinstance(node, list):
        for item in node:
            out |= _paths(item, f"{prefix}[]")
    return out


def test_every_key_used_in_the_examples_is_documented() -> None:
    documented = {r.path for r in rows()}
    for name in ("turnout.yaml", "turnout-sim.yaml"):
        used = _paths(yaml.safe_load((ROOT / "examples" / name).read_text(encoding="utf-8")))
        assert used <= documented, f"examples/{name} uses undocumented keys: {sorted(used - documented)}"
