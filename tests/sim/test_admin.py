"""The admin API: providers and URLs (never keys), faults set/list/clear with clear errors, stats, reset,
timeline over HTTP, the injected clock, and the status pages driven by ST-1/2/3."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from adapters.sim import Simulator
from tests.sim.conftest import KEY, call

pytestmark = pytest.mark.integration


async def _json(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as r:
        return r.status, await r.json()


async def test_providers_lists_urls_and_never_keys(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, doc = await _json(http, "GET", sim.admin_url + "/providers")
    assert status == 200
    by_id = {p["id"]: p for p in doc["providers"]}
    assert by_id["an"]["base_url"] == sim.base_url("an") and by_id["gg"]["base_url"].endswith("/v1beta")
    assert by_id["oa"]["base_url"].endswith("/v1") and by_id["lc"]["auth"] is False
    assert KEY not in str(doc)
    _, cat = await _json(http, "GET", sim.admin_url + "/catalogue")
    assert {"OA-429R", "AN-529", "GG-MID", "CAT-1"} <= {f["id"] for f in cat["faults"]} and "rate_limited" in cat[
        "aliases"
    ]


async def test_faults_set_list_clear_over_http(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, rule = await _json(
        http, "POST", sim.admin_url + "/faults", {"provider": "an", "fault": "overloaded", "count": 2}
    )
    assert status == 201 and rule["fault"] == "AN-529" and rule["count_left"] == 2
    assert (await call(http, sim, "an"))[0] == 529
    _, listed = await _json(http, "GET", sim.admin_url + "/faults?provider=an")
    assert [(f["id"], f["count_left"], f["hits"]) for f in listed["faults"]] == [(rule["id"], 1, 1)]
    status, _ = await _json(http, "DELETE", f"{sim.admin_url}/faults/{rule['id']}")
    assert status == 200 and (await call(http, sim, "an"))[0] == 200
    status, _ = await _json(http, "DELETE", f"{sim.admin_url}/faults/{rule['id']}")
    assert status == 404

    await _json(
        http,
        "POST",
        sim.admin_url + "/faults",
        {"provider": "oa", "fault": "latency", "duration": "5m", "params": {"seconds": 0}},
    )
    await _json(http, "POST", sim.admin_url + "/faults", {"provider": "gg", "fault": "GG-503", "model": "gem-y"})
    status, cleared = await _json(http, "DELETE", sim.admin_url + "/faults")
    assert status == 200 and cleared == {"cleared": 2} and sim.faults() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"provider": "nope", "fault": "auth"}, "unknown simulated provider 'nope'"),
        ({"provider": "oa", "fault": "AN-529"}, "fault AN-529 is for the anthropic family"),
        ({"provider": "oa", "fault": "gremlins"}, "unknown fault 'gremlins'"),
        ({"provider": "oa", "fault": "auth", "model": "gpt-z"}, "has no model 'gpt-z'"),
        ({"provider": "oa", "fault": "auth", "count": 0}, "count must be a positive integer"),
        ({"provider": "oa", "fault": "auth", "duration": "soon"}, "bad duration 'soon'"),
        ({"provider": "oa", "fault": "auth", "probability": 2}, "probability must be in (0, 1]"),
        ({"provider": "oa", "fault": "auth", "colour": "red"}, "unknown field(s) colour"),
        ({"fault": "auth"}, "`provider` is required"),
        ({"provider": "oa", "fault": "hang", "params": {"secs": 1}}, "takes no parameter 'secs'; it takes: seconds"),
        (
            {"provider": "oa", "fault": "HDR-RA", "params": {"hint": "soon"}},
            "hint must be one of ms, seconds, date, no_retry",
        ),
        ({"provider": "oa", "fault": "latency", "params": {"seconds": "x"}}, "'seconds' must be a non-negative number"),
    ],
)
async def test_bad_fault_requests_name_the_problem(
    sim: Simulator, http: aiohttp.ClientSession, body: dict[str, Any], message: str
) -> None:
    status, doc = await _json(http, "POST", sim.admin_url + "/faults", body)
    assert status in (400, 404) and message in doc["error"], doc


async def test_stats_count_attempts_per_target_and_reset(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "server_error", count=1, model="gpt-x")
    for model in ("gpt-x", "gpt-x", "gpt-y"):
        await call(http, sim, "oa", model=model)
    await call(http, sim, "an", stream=True)
    _, stats = await _json(http, "GET", sim.admin_url + "/stats")
    oa = stats["providers"]["oa"]
    assert oa["targets"] == {"gpt-x": {"chat_completions": 2}, "gpt-y": {"chat_completions": 1}}
    assert oa["faults"] == {"OA-500": 1} and oa["statuses"] == {"500": 1, "200": 2}
    assert stats["providers"]["an"]["endpoints"] == {"messages": 1} and stats["total"] == 4
    assert sim.requests("oa", "gpt-x") == 2 and sim.requests(endpoint="messages") == 1
    await _json(http, "POST", sim.admin_url + "/stats/reset")
    assert sim.stats()["total"] == 0


async def test_reset_clears_faults_and_limits(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "refused")
    await call(http, sim, "an")
    status, _ = await _json(http, "POST", sim.admin_url + "/reset")
    assert status == 200 and sim.faults() == [] and sim.stats()["total"] == 0
    status, headers, _ = await call(http, sim, "oa")
    assert status == 200 and headers["x-ratelimit-remaining-requests"] == "499"


async def test_timeline_over_http_with_the_injected_clock(sim: Simulator, http: aiohttp.ClientSession) -> None:
    entries = [{"at": "10s", "provider": "gg", "model": "gem-x", "fault": "region_blocked", "duration": "20s"}]
    status, tl = await _json(http, "PUT", sim.admin_url + "/timeline", {"entries": entries, "start": True})
    assert status == 200 and tl["running"] and tl["entries"][0]["at"] == "10s"
    status, moved = await _json(http, "POST", sim.admin_url + "/advance", {"seconds": "10s"})
    assert status == 200 and moved["monotonic"] == 10
    status, _, body = await call(http, sim, "gg")
    assert status == 400 and b"FAILED_PRECONDITION" in body
    status, bad = await _json(
        http, "PUT", sim.admin_url + "/timeline", {"entries": [{"at": "1s", "provider": "gg", "fault": "AN-529"}]}
    )
    assert status == 400 and bad["error"].startswith("entries[0]") and "anthropic family" in bad["error"]
    status, stopped = await _json(http, "POST", sim.admin_url + "/timeline/stop")
    assert status == 200 and not stopped["running"]


async def test_status_pages_follow_status_faults(sim: Simulator, http: aiohttp.ClientSession) -> None:
    summary = sim.status_page_url("an")
    _, page = await _json(http, "GET", summary)
    assert (
        page["status"]["indicator"] == "none"
        and page["components"][0]["status"] == "operational"
        and page["incidents"] == []
    )

    sim.set_fault("an", "ST-1")  # major incident, API partial outage; the provider itself still answers
    _, page = await _json(http, "GET", summary)
    assert page["status"]["indicator"] == "major" and page["components"][0] == page["incidents"][0]["components"][0]
    assert page["components"][0]["status"] == "partial_outage" and page["incidents"][0]["impact"] == "major"
    assert (await call(http, sim, "an"))[0] == 200
    _, status_json = await _json(http, "GET", sim.status_page_url("an", "status"))
    assert set(status_json) == {"page", "status"}

    sim.set_fault("an", "ST-2")
    async with http.get(summary) as r:
        assert r.status == 503
    sim.clear_faults("an")

    _, incidents = await _json(http, "GET", sim.status_page_url("gg", "incidents"))
    assert all("end" in i for i in incidents)
    sim.set_fault("gg", "ST-3")
    _, incidents = await _json(http, "GET", sim.status_page_url("gg", "incidents"))
    active = [i for i in incidents if "end" not in i]
    assert len(active) == 1 and active[0]["status_impact"] == "SERVICE_OUTAGE"


async def test_status_feed_timeout_mode_holds_until_cleared(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "ST-2", mode="timeout")
    with pytest.raises(TimeoutError):
        async with http.get(sim.status_page_url("oa"), timeout=aiohttp.ClientTimeout(total=0.2)):
            pass
