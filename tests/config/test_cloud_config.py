"""The cloud adapters' config: endpoints derived from region (and project), and a missing optional extra is a
config error naming the extra to install."""

from __future__ import annotations

import sys

import pytest

from controlplane.config_loader import parse_config
from controlplane.errors import ConfigError

BEDROCK = """
providers:
  - {id: br, adapter: bedrock, region: eu-central-1, models: [{name: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"}]}
"""
VERTEX = """
providers:
  - {id: vx, adapter: vertex, region: europe-west4, project: p, models: [{name: gemini-2.5-flash}]}
"""
AZURE_ENTRA = """
providers:
  - {id: az, adapter: azure, base_url: "https://r.openai.azure.com", models: [{name: dep}]}
"""


@pytest.mark.parametrize(
    ("text", "module", "field", "extra"),
    [
        (BEDROCK, "botocore", "providers.br.adapter", "turnout[aws]"),
        (VERTEX, "google.auth", "providers.vx.adapter", "turnout[gcp]"),
        (AZURE_ENTRA, "azure.identity", "providers.az.adapter", "turnout[azure]"),
    ],
)
def test_a_missing_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, text: str, module: str, field: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if the package were not installed
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert err.value.field == field
    assert module in err.value.problem and extra in err.value.fix


def test_azure_with_an_api_key_needs_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    cfg = parse_config(AZURE_ENTRA.replace("models:", "api_key: k, models:"), env={})
    assert cfg.providers[0].adapter == "azure"


def test_endpoints_follow_region_and_project() -> None:
    assert parse_config(BEDROCK, env={}).providers[0].base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    assert parse_config(VERTEX, env={}).providers[0].base_url == "https://europe-west4-aiplatform.googleapis.com/v1"


def test_vertex_without_project_or_with_a_missing_credentials_file_says_so() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(VERTEX.replace("project: p, ", ""), env={})
    assert err.value.field == "providers.vx.project"
    with pytest.raises(ConfigError) as err:
        parse_config(VERTEX.replace("project: p,", "project: p, credentials_file: /no/such/sa.json,"), env={})
    assert err.value.field == "providers.vx.credentials_file" and "/no/such/sa.json" in err.value.problem
