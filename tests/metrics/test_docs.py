"""docs/metrics.md documents every metric of the registry (name, type, labels, meaning)."""

from __future__ import annotations

from pathlib import Path

from controlplane.metrics import catalogue, catalogue_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_metrics_doc_matches_the_registry() -> None:
    assert DOC.read_text(encoding="utf-8") == catalogue_markdown(), (
        "docs/metrics.md is out of date: run `python -m controlplane.metrics > docs/metrics.md`"
    )


def test_every_metric_has_a_row_with_its_labels() -> None:
    text = DOC.read_text(encoding="utf-8")
    for d in catalogue():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{d.name}` |")), None)
        assert row is not None, d.name
        assert all(f"`{label}`" in row for label in d.labels), d.name
