"""The gateway's cache on the real network: every origin down for 10 s, and the cached site stays up, then heals."""
from pathlib import Path

from .conftest import read_events

LESSON = "exercises/06-caching/stale-if-error.toml"


def test_every_origin_down_and_every_cached_request_still_answered_then_validated_again(shipped):
    events = read_events(Path(shipped(LESSON)))
    faults = [e for e in events if e["kind"] in ("fault_applied", "fault_reverted")]
    down = max(e["t"] for e in faults if e["action"] == "crash")
    up = max(e["t"] for e in faults if e["action"] == "restart")
    assert up - down > 9.5
    finished = [e for e in events if e["kind"] == "request_finished"]
    during = [e for e in finished if down + 0.5 < e["t"] < up - 0.1]
    assert len(during) > 150 and all(e["ok"] for e in during)
    results = [e for e in events if e["kind"] == "cache_result"]
    stale = [e for e in results if e["squid"] == "TCP_REFRESH_FAIL_OLD"]
    first_down = min(e["t"] for e in faults if e["action"] == "crash")  # the three crashes are a few ms apart
    assert stale and all(first_down <= e["t"] <= up + 1.0 for e in stale)  # stale only while origins were down
    # healed: once the origins are back and UP again, stale copies are validated with them (304s), not served blind
    after = [e["squid"] for e in results if e["t"] > up + 3.0]
    assert "TCP_REFRESH_UNMODIFIED" in after and "TCP_REFRESH_FAIL_OLD" not in after
    origin_asked = [e for e in events if e["kind"] == "request_parsed" and e["target"].startswith("/static/")]
    assert len(origin_asked) < len(finished) / 2  # the cache spared the origins most of the work


def test_a_stampede_on_an_expiring_page_costs_the_origins_one_request_per_expiry(shipped):
    events = read_events(Path(shipped("exercises/06-caching/stampede.toml")))
    finished = [e for e in events if e["kind"] == "request_finished"]
    asked = [e for e in events if e["kind"] == "request_routed"]
    assert len(finished) > 2000 and all(e["ok"] for e in finished)
    # 12 s of a page fresh for 2 s: about one origin request per expiry, not one per waiting client
    assert len(asked) <= 12, [round(e["t"] - asked[0]["t"], 2) for e in asked]


def test_a_header_the_cache_does_not_key_on_poisons_everyones_copy_only_when_the_gateway_passes_it(tmp_path):
    import dataclasses

    from lab.net.lab import Lab
    from lab.net.roles import plan_services
    from lab.runner import load_scenario

    base = load_scenario("exercises/06-caching/poisoning.toml")
    seen = {}
    for trust in (False, True):
        b = base.balancer
        scenario = dataclasses.replace(base, balancer=dataclasses.replace(b, client=dataclasses.replace(b.client, trust_forwarded_host=trust)))
        with Lab(scenario, tmp_path / f"trust-{trust}", say=lambda *a: None) as lab:
            lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
            attack = lab.net["c2"].cmd("curl -s -m 2 -H 'X-Forwarded-Host: evil.example' http://10.0.0.2/page")
            victim = lab.net["c1"].cmd("curl -s -m 2 -D - http://10.0.0.2/page")
        seen[trust] = (attack, victim)
    attack, victim = seen[False]  # halab's default: the header never reaches an origin, the copy links to the site itself
    assert 'src="http://10.0.0.2/static/app.js"' in attack and "X-Cache: HIT" in victim and "evil.example" not in victim
    attack, victim = seen[True]  # a careless gateway: the attacker's miss is stored, and the next visitor runs evil.example's script
    assert 'src="http://evil.example/static/app.js"' in attack
    assert "X-Cache: HIT" in victim and 'src="http://evil.example/static/app.js"' in victim


def test_varnish_from_the_same_settings_caches_but_has_no_stale_if_error_and_heals_after_the_repair(shipped):
    events = read_events(Path(shipped("exercises/06-caching/varnish.toml")))
    faults = [e for e in events if e["kind"] in ("fault_applied", "fault_reverted")]
    down = max(e["t"] for e in faults if e["action"] == "crash")
    up = max(e["t"] for e in faults if e["action"] == "restart")
    results = [e for e in events if e["kind"] == "cache_result"]
    # Varnish's own log, read back: misses first, then hits on the copies it stored, before any fault
    assert {e["squid"] for e in results if e["t"] < down} >= {"TCP_MISS", "TCP_HIT"}
    routed = [e for e in events if e["kind"] == "request_routed"]
    assert {e["server"] for e in routed if e["t"] < down} == {"o1", "o2", "o3"}
    # its probes, read back: every origin DOWN after the crash and UP again after the repair
    changes = [e for e in events if e["kind"] == "health_changed"]
    assert {e["server"] for e in changes if e["after"] == "DOWN" and down < e["t"] < up} == {"o1", "o2", "o3"}
    assert {e["server"] for e in changes if e["after"] == "UP" and up < e["t"] < up + 2.0} == {"o1", "o2", "o3"}
    # no stale-if-error in Varnish: once the copies expire (max-age=1) the cached site is down with its origins
    finished = [e for e in events if e["kind"] == "request_finished"]
    outage = [e for e in finished if down + 1.5 < e["t"] < up]
    assert len(outage) > 40 and not any(e["ok"] for e in outage)
    # healed: from the moment Varnish's probes have every origin UP again, every request succeeds
    back = max(e["t"] for e in changes if e["after"] == "UP")
    healed = [e for e in finished if e["t"] > back]
    assert len(healed) > 20 and all(e["ok"] for e in healed)


def test_a_forward_proxys_cache_is_shared_by_the_whole_client_lan(shipped):
    events = read_events(Path(shipped("exercises/06-caching/proxy-cache.toml")))
    finished = [e for e in events if e["kind"] == "request_finished"]
    assert len(finished) > 300 and all(e["ok"] for e in finished)
    results = [e for e in events if e["kind"] == "cache_result" and e["node"] == "fp1"]
    misses = {e["key"]: e for e in results if e["squid"] == "TCP_MISS"}
    hits = [e for e in results if e["squid"] == "TCP_HIT"]
    assert len(hits) > 0.9 * len(finished)
    # shared: a client's hit on a page another client's miss stored, for every client
    shared = {e["id"].split("-")[0] for e in hits if e["key"] in misses and misses[e["key"]]["id"].split("-")[0] != e["id"].split("-")[0]}
    assert shared == {"c1", "c2", "c3"}
    asked = [e for e in events if e["kind"] == "request_parsed" and e["target"].startswith("/static/")]
    assert len(asked) <= 10  # one origin request per page (10 keys), whoever asked first
