"""The whole hostile corpus against halab's gateway on loopback: nothing unrouted reaches the origin, nothing hangs."""
import asyncio
import json
from collections import Counter

from lab.packets.hostile import run_all
from lab.packets.hostile_corpus import SHAPES, judge, requests_in
from tests.unit.test_gateway_hostile import RecordingOrigin, gateway

TIMEOUTS = {"timeout_http_request": 0.6, "timeout_client": 0.6, "timeout_keep_alive": 0.6}


def test_the_corpus_is_large_and_covers_every_category():
    categories = Counter(s.category for s in SHAPES)
    assert len(SHAPES) >= 60
    assert categories["smuggling"] >= 20 and {"chunked", "whitespace", "size", "slow", "pipelining", "version"} <= set(categories)


def test_halab_refuses_what_it_must_serves_what_it_should_and_passes_on_nothing_unrouted(tmp_path):
    async def go():
        origin = RecordingOrigin()
        port = await origin.start()
        _, front, front_port = await gateway(tmp_path, port, **TIMEOUTS)
        results = await run_all("127.0.0.1", front_port, "halab", 2.0)
        await asyncio.sleep(0.1)
        front.close()
        origin.server.close()
        return results, origin.seen
    results, seen = asyncio.run(go())
    events = [json.loads(line) for line in (tmp_path / "lb.jsonl").read_text().splitlines()]
    routed = requests_in([e["path"] for e in events if e["kind"] == "request_routed"], "halab")
    parsed = requests_in([s[1] for s in seen], "halab")
    assert judge(results, parsed, routed, bound=0.6 + 0.4) == []
    assert parsed and sum(parsed.values()) >= 15  # the valid shapes did reach the origin


def test_judge_catches_a_smuggled_request_a_hang_and_a_wrong_verdict():
    results = [{"name": "a", "expect": "refuse", "statuses": [200], "first_byte": 0.01, "closed": None},
               {"name": "b", "expect": "serve", "statuses": [], "first_byte": None, "closed": None}]
    problems = judge(results, Counter({"/smuggled/x/a": 1, "/corpus/x/b": 1}), Counter({"/corpus/x/b": 1}), bound=1.0)
    assert any("a: should be refused" in p for p in problems)
    assert any("b: no answer and no close" in p for p in problems) and any("b: valid, should be served" in p for p in problems)
    assert any("/smuggled/x/a" in p and "request smuggling" in p for p in problems)
    assert requests_in(["http://lab/corpus/x/a?q", "/corpus/y/a", "/health"], "x") == Counter({"/corpus/x/a": 1})
