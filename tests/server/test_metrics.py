"""``GET /metrics``: Prometheus text that parses, and counters that move as requests are
served, by exactly what the requests did (token counts from the answers' ``usage``)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import ENDLESS

CHAT = "/v1/chat/completions"


def scrape(server, http: httpx.Client) -> dict[tuple[str, tuple], float]:
    r = http.get(f"{server.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_counters_move_as_requests_are_served(server):
    body = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 6,
            "temperature": 0, "response_format": ENDLESS}  # exactly 6 tokens each
    with httpx.Client(headers=server.headers(), timeout=60) as http:
        # behind the API key like every route but /health
        assert http.get(f"{server.url}/metrics", headers={"Authorization": ""}).status_code == 401
        before = scrape(server, http)
        whole = http.post(server.url + CHAT, json=body).json()
        with http.stream("POST", server.url + CHAT, json={**body, "stream": True,
                                                        "stream_options": {"include_usage": True}}
                         ) as resp:
            lines = [line for line in resp.iter_lines() if line.startswith("data: {")]
        assert http.post(server.url + CHAT, json={**body, "temperature": -1}).status_code == 400
        assert http.get(f"{server.url}/v1/nowhere").status_code == 404
        after = scrape(server, http)

    assert whole["usage"]["completion_tokens"] == 6
    prompt = whole["usage"]["prompt_tokens"]
    route = {"route": CHAT}
    assert delta(after, before, "lamina_requests_total", **route, status="200") == 2
    assert delta(after, before, "lamina_requests_total", **route, status="400") == 1
    assert delta(after, before, "lamina_requests_total", route="other", status="404") == 1
    assert delta(after, before, "lamina_prompt_tokens_total") == 2 * prompt
    assert delta(after, before, "lamina_generated_tokens_total") == 2 * 6
    assert delta(after, before, "lamina_time_to_first_token_seconds_count") == 2
    assert delta(after, before, "lamina_time_to_first_token_seconds_sum") > 0
    # one gap between consecutive pieces: at most 5 per 6-token answer
    assert 2 <= delta(after, before, "lamina_inter_token_latency_seconds_count") <= 10
    assert len(lines) >= 3
    assert after[("lamina_slots_total", ())] == 1
    assert after[("lamina_slots_busy", ())] == 0
    assert after[("lamina_queue_length", ())] == 0
