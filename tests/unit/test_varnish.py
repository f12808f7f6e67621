"""[balancer] impl = "varnish": the VCL rendered from halab's settings, and varnishncsa / varnishlog lines read back as events."""
import shutil
import subprocess
import textwrap

import pytest
import tomllib

import topologies
from lab.core.cache import CacheSettings
from lab.core.health import HealthSettings
from lab.core.scenario import REAL_BALANCERS, BalancerSettings, parse_scenario
from lab.core.schema import ConfigError, build
from lab.net.render_varnish import DIRECTORS, parameters, storage, vcl
from lab.services.varnish import ATTACH_ID, parse_health, parse_ncsa

SERVERS = [{"name": "o1", "address": "10.0.0.11", "port": 80, "weight": 5}, {"name": "o2", "address": "10.0.0.12", "port": 8080, "weight": 1},
           {"name": "o3", "address": "10.0.0.13", "port": 80, "weight": 1, "backup": True}]


def settings(**changes):
    return build(BalancerSettings, {"impl": "varnish", **changes})


def test_every_algorithm_the_scenario_accepts_has_a_director():
    assert set(DIRECTORS) == REAL_BALANCERS["varnish"]
    with pytest.raises(ValueError, match="'leastconn' has no Varnish director"):
        vcl(settings(algorithm="leastconn"), SERVERS, "gw1")


def test_the_probe_counts_a_window_that_agrees_with_haproxys_rise_and_fall():
    text = vcl(settings(health=HealthSettings(inter=0.5, rise=2, fall=3, timeout=0.4)), SERVERS, "gw1")
    # healthy while >= rise of the last rise+fall-1 probes passed: a steady server goes DOWN after exactly
    # fall failures and comes back UP after exactly rise successes, as HAProxy counts
    for line in (".interval = 0.5s;", ".timeout = 0.4s;", ".window = 4;", ".threshold = 2;", ".initial = 2;", '.url = "/health";'):
        assert line in text
    # replay Varnish's sliding window over the rendered numbers: from all good, DOWN after exactly fall failures;
    # from all bad, UP after exactly rise successes
    window = int(text.split(".window = ")[1].split(";")[0])
    threshold = int(text.split(".threshold = ")[1].split(";")[0])

    def probes_until_change(start, result):
        history = [start] * window
        for n in range(1, 2 * window):
            history = history[1:] + [result]
            if (sum(history) >= threshold) != start:
                return n
    assert probes_until_change(True, False) == 3 and probes_until_change(False, True) == 2


def test_servers_weights_and_backups():
    text = vcl(settings(algorithm="random"), SERVERS, "gw1")
    assert 'backend o2 {\n    .host = "10.0.0.12";\n    .port = "8080";' in text
    assert "halab.add_backend(o1, 5);" in text and "halab.add_backend(o2, 1);" in text
    assert "halab.add_backend(o3" not in text and "backups.add_backend(o3);" in text  # a backup serves only when no primary can
    assert "if (!std.healthy(req.backend_hint)) {\n        set req.backend_hint = backups.backend();" in text
    rr = vcl(settings(algorithm="roundrobin"), SERVERS[:2], "gw1")
    assert "directors.round_robin()" in rr and "halab.add_backend(o1);" in rr and "backups" not in rr  # round_robin has no weights
    assert "halab.backend(req.url)" in vcl(settings(algorithm="hash"), SERVERS, "gw1")
    assert "halab.backend(client.ip)" in vcl(settings(algorithm="source"), SERVERS, "gw1")
    assert "halab.reconfigure();" in vcl(settings(algorithm="consistent"), SERVERS, "gw1")


def test_the_cache_and_its_absence():
    off = vcl(settings(), SERVERS, "gw1")
    assert "return (pass);" in off and "X-Cache" not in off
    on = vcl(settings(cache=CacheSettings(enabled=True, max_object=1000)), SERVERS, "gw1")
    assert "return (pass);" not in on and 'set resp.http.X-Cache = req.http.X-Halab-Cache + " from gw1";' in on
    assert "std.integer(beresp.http.Content-Length, 0) > 1000" in on  # larger answers pass through unstored
    assert "hash_ignore_busy" not in on
    assert "set req.hash_ignore_busy = true;" in vcl(settings(cache=CacheSettings(enabled=True, collapse=False)), SERVERS, "gw1")
    assert storage(settings(cache=CacheSettings(enabled=True, max_bytes=32 * 1024 * 1024))) == "malloc,32m"


def test_without_http_checks_no_probe_is_rendered():
    from lab.core.health import ProbeSettings

    text = vcl(settings(probe=build(ProbeSettings, {"kind": "tcp"})), SERVERS, "gw1")
    assert "probe health" not in text and ".probe" not in text


def test_forwarded_host_retries_and_readiness():
    text = vcl(settings(retries=2), SERVERS, "gw1")
    assert "unset req.http.X-Forwarded-Host;" in text
    assert "if (bereq.retries < 2) {\n        return (retry);" in text
    assert 'if (req.url == "/halab-ready") {' in text
    assert "unset req.http.X-Forwarded-Host;" not in vcl(settings(client=build_limits(trust_forwarded_host=True)), SERVERS, "gw1")
    assert "return (retry)" not in vcl(settings(), SERVERS, "gw1")


def build_limits(**changes):
    from lab.core import client_limits

    return build(client_limits.ClientLimits, changes)


def test_parameters_follow_the_client_limits_and_make_up_no_lifetimes():
    params = dict(p.split("=") for p in parameters(settings(retries=1)))
    assert params["default_ttl"] == "0" and params["default_grace"] == "0"  # Varnish's own defaults: 120 s and 10 s
    assert params["http_req_hdr_len"] == "8192" and params["http_req_size"] == "16384" and params["http_max_hdr"] == "101"
    assert params["timeout_idle"] == "10" and params["max_retries"] == "1"  # halab's keep-alive timeout (Varnish's: 5 s)
    assert dict(p.split("=") for p in parameters(settings(client=build_limits(timeout_keep_alive=2.5))))["timeout_idle"] == "2.5"


@pytest.mark.skipif(shutil.which("varnishd") is None, reason="varnishd is not installed (apt install varnish)")
@pytest.mark.parametrize("algorithm", sorted(DIRECTORS))
def test_varnishs_own_compiler_accepts_every_rendering(tmp_path, algorithm):
    for cache in (False, True):
        path = tmp_path / f"{algorithm}-{cache}.vcl"
        path.write_text(vcl(settings(algorithm=algorithm, retries=1, cache=CacheSettings(enabled=cache, collapse=cache)), SERVERS, "gw1"))
        out = subprocess.run(["varnishd", "-C", "-j", "none", "-f", str(path), "-n", str(tmp_path / "n")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-1500:]


def test_ncsa_lines_become_routing_and_cache_events():
    hit = parse_ncsa("ROUTED 1700000000.250000 0.000104 c1-7 o2 200 HIT")
    assert hit == [("cache_result", {"t": 1700000000.25, "id": "c1-7", "key": "-", "result": "HIT", "squid": "TCP_HIT", "status": 200,
                                     "age": None, "why": "varnish HIT"})]  # a hit asked no origin: nothing is routed
    miss = parse_ncsa("ROUTED 1700000000.5 0.003 c1-8 o1 200 MISS")
    assert [k for k, _ in miss] == ["cache_result", "request_routed"] and miss[1][1] == {"t": 1700000000.5, "id": "c1-8", "server": "o1"}
    assert parse_ncsa("ROUTED 1700000001 0.001 c2-1 o3 200 -") == [("request_routed", {"t": 1700000001.0, "id": "c2-1", "server": "o3"})]
    failed = parse_ncsa("ROUTED 1700000002 0.5 c1-9 o1 503 BYPASS")[1]
    assert failed == ("request_failed", {"t": 1700000002.0, "id": "c1-9", "server": "o1", "status": 503, "error": "http_503"})
    nobody = parse_ncsa("ROUTED 1700000003 0.0 - - 503 -")
    assert nobody == [("request_failed", {"t": 1700000003.0, "id": None, "server": None, "status": 503, "error": "no_server"})]
    stale = parse_ncsa("ROUTED 1700000004 0.0 c1-10 o1 200 STALE")
    assert [(k, f["squid"]) for k, f in stale] == [("cache_result", "TCP_STALE_HIT")]
    assert parse_ncsa(f"ROUTED 1700000005 0.0 {ATTACH_ID} - 200 -") == []  # the wrapper's own readiness request
    assert parse_ncsa("Debug: Child (31921) Started") == []


def test_backend_health_records_become_checks_and_changes():
    sick = parse_health('         0 Backend_health - boot.o3 Went sick ------- 1 2 4 0.000000 0.000000 "Open error 111 (Connection refused)"')
    assert sick[0] == ("health_checked", {"server": "o3", "result": "fail", "detail": "Open error 111 (Connection refused)",
                                          "label": "DOWN 1/4 (healthy at 2)"})
    assert sick[1][1]["before"] == "UP" and sick[1][1]["after"] == "DOWN" and sick[1][1]["reason"] == "Open error 111 (Connection refused)"
    back = parse_health('0 Backend_health - o1 Went healthy 4---X-RH 2 2 4 0.001397 0.001437 "HTTP/1.0 200 OK"')
    assert back[0][1]["result"] == "pass" and back[1][1]["after"] == "UP" and back[1][1]["before"] == "DOWN"
    still = parse_health("0 Backend_health - boot.o1 Still healthy 4---X-RH 4 2 4 0.0005 0.0006 HTTP/1.1 200 OK")
    assert [k for k, _ in still] == ["health_checked"] and still[0][1]["label"] == "UP 4/4 (healthy at 2)"
    assert parse_health("0 CLI - Rd ping") == []


@pytest.mark.parametrize("extra,match", [
    ('algorithm = "leastconn"', "'leastconn' has no varnish equivalent"),
    ("rate_limit = 10", "vsthrottle"),
    ("[balancer.passive]\nmax_fails = 1", "only by its probes"),
    ('[balancer.health]\nkind = "tcp"', "HTTP only"),
])
def test_a_scenario_asking_varnish_for_what_it_cannot_do_is_refused(extra, match):
    text = textwrap.dedent("""
        duration = 5
        [topology]
        name = "single_lb"
        [balancer]
        impl = "varnish"
    """) + extra + "\n"
    with pytest.raises(ConfigError, match=match):
        parse_scenario(tomllib.loads(text), "s.toml", topologies.lookup)


def test_a_varnish_gateway_with_its_cache_is_accepted():
    text = 'duration = 5\n[topology]\nname = "single_lb"\n[balancer]\nimpl = "varnish"\nalgorithm = "hash"\n[balancer.cache]\nenabled = true\n'
    s = parse_scenario(tomllib.loads(text), "s.toml", topologies.lookup)
    assert s.balancer.impl == "varnish" and s.balancer.cache.enabled
