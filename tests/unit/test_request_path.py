"""The path of one request, joined from each hop's events by its id (lab.analysis.path)."""
from lab.analysis.path import hops, samples

EVENTS = [
    {"t": 1.0, "node": "c1", "kind": "request_finished", "id": "c1-4", "ok": True, "status": 200, "latency": 0.0034, "path": "/",
     "served_by": "o2", "proxy": "fp1"},
    {"t": 1.001, "node": "fp1", "kind": "proxy_request", "id": "c1-4", "method": "GET", "url": "http://10.2.0.2/", "status": 200,
     "result": "TCP_MISS", "duration": 0.0029},
    {"t": 1.001, "node": "gw1", "kind": "request_routed", "id": "c1-4", "server": "o2", "method": "GET", "path": "/", "attempt": 1},
    {"t": 1.002, "node": "o2", "kind": "request_parsed", "id": "c1-4", "method": "GET", "target": "/",
     "via": "1.1 fp1 (halab), 1.1 gw1", "forwarded_for": "10.1.0.101, 10.1.0.2"},
    {"t": 1.1, "node": "c3", "kind": "request_finished", "id": "c3-0", "ok": True, "status": 200, "latency": 0.002, "path": "/",
     "served_by": "o1", "proxy": None},
    {"t": 1.1, "node": "gw1", "kind": "request_routed", "id": "c3-0", "server": "o1"},
]


def test_a_proxied_request_is_drawn_hop_by_hop_with_what_the_origin_saw():
    lines = hops(EVENTS, "c1-4")
    assert lines[0] == "request c1-4: GET / -> 200 in 3.4 ms (as client c1 saw it)"
    assert lines[1].split()[:4] == ["c1", "->", "fp1", "inbound"] and "TCP_MISS/200" in lines[1]
    assert lines[2].split()[:4] == ["fp1", "->", "gw1", "inbound"] and "routed it to o2" in lines[2]
    assert lines[3].split() == ["gw1", "->", "o2", "inbound"]
    assert lines[4] == "  at o2: Via: 1.1 fp1 (halab), 1.1 gw1; X-Forwarded-For: 10.1.0.101, 10.1.0.2"
    assert lines[5].split()[:8] == ["c1", "<-", "fp1", "<-", "gw1", "<-", "o2", "outbound"]


def test_a_direct_request_skips_the_proxy_and_unknown_ids_say_so():
    assert [line.split()[:3] for line in hops(EVENTS, "c3-0")[1:3]] == [["c3", "->", "gw1"], ["gw1", "->", "o1"]]
    assert hops(EVENTS, "c9-9") == ["no request with id 'c9-9' in this run"]


def test_the_samples_are_one_proxied_and_one_direct_request_and_none_without_proxies():
    assert samples(EVENTS) == ["c1-4", "c3-0"]
    assert samples([e for e in EVENTS if e["node"] == "c3" or e["kind"] != "request_finished"]) == []


def test_each_clients_view_measures_its_longest_time_without_an_answer():
    from lab.analysis.metrics import per_client

    def req(node, t, ok, latency=0.003, served_by="o1"):
        return {"node": node, "kind": "request_finished", "t": t, "ok": ok, "latency": latency, "served_by": served_by if ok else None}

    requests = [req("c1", 0.0, True), req("c1", 0.05, False), req("c1", 0.10, False), req("c1", 0.15, True, 0.6, "o2"),
                req("c1", 0.2, True), req("c2", 0.0, True), req("c2", 0.05, True, 0.004)]
    events = [{"kind": "lab_built", "interfaces": {"gw1": ["10.2.0.2"], "nat1": ["10.4.0.2"]}},
              {"kind": "load_started", "node": "c1", "proxies": ["fp1", "fp2"], "target": "10.2.0.2"},
              {"kind": "load_started", "node": "c2", "target": "10.4.0.2"}]
    view = per_client(events, requests)
    assert view["c1"] == {"route": "fp1, fp2", "target": "gw1", "sent": 5, "failed": 2, "longest_gap": 0.15, "worst_latency": 0.6,
                          "served_by": {"o1": 2, "o2": 1}, "errors": {"?": 2}}
    assert view["c2"] == {"route": "direct", "target": "nat1", "sent": 2, "failed": 0, "longest_gap": 0.0, "worst_latency": 0.004,
                          "served_by": {"o1": 2}, "errors": {}}
