"""promtool accepts the alert rules and the scrape example, and the rules' unit tests pass."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.dashboards.exprs import PROMETHEUS
from tests.support import require_integration


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    require_integration(promtool is not None, "promtool not installed (Debian package prometheus)")
    return subprocess.run([str(promtool), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_promtool_check_rules() -> None:
    proc = _promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.integration
def test_promtool_test_rules() -> None:
    proc = _promtool("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.integration
def test_promtool_check_config_of_the_scrape_example() -> None:
    proc = _promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
