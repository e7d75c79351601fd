"""Every PromQL expression in the dashboards and alert rules, and how to run a dashboard query outside Grafana."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ROOT", "GRAFANA", "PROMETHEUS", "dashboards", "dashboard_exprs", "rule_exprs", "concrete"]

ROOT = Path(__file__).resolve().parents[2] / "dashboards"
GRAFANA = ROOT / "grafana"
PROMETHEUS = ROOT / "prometheus"


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(GRAFANA.glob("*.json"))}


def _panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside collapsed rows
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every panel query and every query variable."""
    found = []
    for name, d in dashboards().items():
        for p in _panels(d):
            for t in p.get("targets", []):
                if t.get("expr"):
                    found.append((f"{name}: {p.get('title')} [{t.get('refId')}]", t["expr"]))
        for var in d.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                found.append((f"{name}: variable {var['name']}", var["query"]))
    return found


def rule_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every recording and alerting rule."""
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [(f"alerts.yml: {r.get('alert') or r.get('record')}", r["expr"]) for g in doc["groups"] for r in g["rules"]]


_LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[^,]+),\s*(?P<label>\w+)\)$")


def concrete(expr: str, *, rate_interval: str = "30s", range_: str = "5m") -> str:
    """A Grafana query as Prometheus sees it: variables set to "All", `label_values(m, l)` as its series query."""
    m = _LABEL_VALUES.match(expr.strip())
    if m:  # Grafana runs label_values through the series API; as an expression it is the metric selector
        return m["metric"].strip()
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__range", range_)
        .replace("$__interval", "5s")
        .replace("$provider", ".*")
        .replace("$route", ".*")
    )
