import math

import pytest

from lab.bench import parse_wrk
from lab.net.render import haproxy_config, nginx_config
from lab.runner import load_scenario

SERVERS = [{"name": "o1", "address": "10.0.0.11", "port": 80, "weight": 5}, {"name": "o2", "address": "10.0.0.12", "port": 80, "backup": True}]


def test_haproxy_config_carries_the_same_health_settings():
    b = load_scenario("exercises/01-health-checks-and-failover/scenario.toml").balancer
    text = haproxy_config(b, SERVERS, "lb1", "/tmp/p")
    assert "balance static-rr" in text and "option httpchk GET /health" in text and "option log-health-checks" in text
    assert 'log-format "ROUTED %Ts.%ms %Th %Ti %TR %Tw %ID %s %ST"' in text
    assert "server o1 10.0.0.11:80 check inter 500ms rise 2 fall 3 weight 5" in text
    assert "server o2 10.0.0.12:80 check inter 500ms rise 2 fall 3 weight 1 backup" in text
    assert "timeout check 400ms" in text and "timeout connect 500ms" in text


def test_nginx_config_weights_backup_and_keepalive():
    b = load_scenario("exercises/02-balancing-algorithms/weighted.toml").balancer
    text = nginx_config(b, SERVERS, "lb1", "/tmp/p", "/tmp")
    assert "server 10.0.0.11:80 weight=5 max_fails=0;" in text and "server 10.0.0.12:80 weight=1 max_fails=0 backup;" in text
    assert "10.0.0.11:80 o1;" in text and "add_header X-Upstream $upstream_name always;" in text
    assert "keepalive 64;" in text and 'proxy_set_header Connection "";' in text


def test_unmapped_algorithm_is_refused_clearly():
    import dataclasses

    b = dataclasses.replace(load_scenario("exercises/02-balancing-algorithms/weighted.toml").balancer, algorithm="maglev")
    with pytest.raises(ValueError, match="'maglev' has no haproxy rendering"):
        haproxy_config(b, SERVERS, "lb1", "/tmp/p")


WRK = """Running 5s test @ http://10.0.0.2/
  1 threads and 32 connections
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.50ms
     99%    2.40ms
  175830 requests in 5.00s, 30.35MB read
Requests/sec:  35166.12
Transfer/sec:      6.07MB
"""


def test_parse_wrk():
    r = parse_wrk(WRK)
    assert r["rps"] == pytest.approx(35166.12) and r["p50"] == pytest.approx(0.000812) and r["p99"] == pytest.approx(0.0024)
    assert r["non2xx"] == 0
    assert math.isnan(parse_wrk("Requests/sec: 5\n")["p50"])


def test_real_balancer_log_lines_become_events():
    from lab.services.realbalancer import parse_line

    names = {"10.0.0.11:80": "o1"}
    syslog = "<129>1 2026-11-26T13:07:27.644791+00:00 - haproxy 1756 - - "
    kind, f = parse_line("haproxy", syslog + "Server origins/o1 is DOWN, reason: Layer4 timeout, check duration: 401ms. 2 active", names)
    assert kind == "health_changed" and (f["server"], f["after"], f["reason"]) == ("o1", "DOWN", "Layer4 timeout")
    assert f["t"] == pytest.approx(1795698447.644791, abs=1e-6)  # HAProxy's own clock, microseconds
    assert parse_line("haproxy", "[WARNING]  (7) : Server origins/o1 is UP, reason: Layer7 check passed", names) is None  # the stderr copy
    kind, f = parse_line("haproxy", syslog + "Health check for server origins/o1 failed, reason: Layer4 timeout, check duration: 301ms, status: 2/3 UP.", names)
    assert kind == "health_checked" and f["label"] == "UP 2/3" and f["result"] == "fail"
    kind, f = parse_line("haproxy", syslog + "ROUTED 1700000000.123 0 5 1 -1 c1-5 o2 200", names)
    assert kind == "request_routed" and f["id"] == "c1-5" and f["server"] == "o2"
    assert f["t"] == pytest.approx(1700000000.129)  # accept + idle 5 ms + receive 1 ms (queue -1: not queued)
    kind, f = parse_line("nginx", "ROUTED 1700000001.500 0.500 c1-6 10.0.0.11:80 504", names)
    assert kind == "request_failed" and f["server"] == "o1" and f["t"] == 1700000001.0 and f["status"] == 504
    assert parse_line("haproxy", syslog + "ROUTED 1700000000.123 0 0 0 0 c1-7 <NOSRV> 503", names)[1]["error"] == "no_server"
    assert parse_line("haproxy", "some other line", names) is None


def test_scenario_refuses_an_algorithm_the_daemon_lacks():
    import textwrap

    import tomllib

    import topologies
    from lab.core.scenario import parse_scenario
    from lab.core.schema import ConfigError

    text = textwrap.dedent("""
        duration = 5
        [topology]
        name = "single_lb"
        [balancer]
        impl = "nginx"
        algorithm = "maglev"
    """)
    with pytest.raises(ConfigError, match="'maglev' has no nginx equivalent"):
        parse_scenario(tomllib.loads(text), "s.toml", topologies.lookup)


def test_bench_ratios_are_taken_within_each_round():
    from lab.bench import DIRECT, ratios, summary

    def r(rps, p50):
        return {"rps": rps, "p50": 0.001, "p99": 0.002, "non2xx": 0.0, "p50_1conn": p50}

    # Round 2 is a slow moment for everyone: within it halab is still 2x HAProxy's added latency.
    rounds = [{DIRECT: r(50000, 30e-6), "halab": r(20000, 90e-6), "haproxy": r(40000, 60e-6), "nginx": r(40000, 60e-6)},
              {DIRECT: r(40000, 50e-6), "halab": r(10000, 170e-6), "haproxy": r(20000, 110e-6), "nginx": r(20000, 110e-6)}]
    got = ratios(rounds)
    assert got["halab"]["rps_ratio"] == [0.5, 0.5]
    assert [round(x, 6) for x in got["halab"]["added_ratio"]] == [2.0, 2.0]
    assert [round(a * 1e6) for a in got["halab"]["added"]] == [60, 120]
    lines = summary(rounds)
    halab = next(line for line in lines if line.startswith("halab"))
    assert "0.50 (0.50-0.50)" in halab and "2.00 (2.00-2.00)" in halab and "90 (60-120)" in halab
    assert lines[-1] == ("halab's targets: req/s >= 0.5 x HAProxy met in 2/2 rounds (median 0.50); "
                         "added p50 <= 2 x HAProxy met in 2/2 rounds (median 2.00)")
    rounds[1]["halab"]["p50_1conn"] = 230e-6  # added 180 us against HAProxy's 60: 3x
    assert "added p50 <= 2 x HAProxy met in 1/2 rounds" in summary(rounds)[-1]


def test_the_proxy_bench_judges_halab_against_squid_round_by_round():
    from lab.bench_proxy import DIRECT, proxy_summary

    def target(rps, p50, mbs):
        return {"rps": rps, "p50_1conn": p50, "tunnel_mbs": mbs}

    rounds = [{DIRECT: target(20000, 160e-6, 3000), "halab": target(10500, 270e-6, 1200), "squid": target(10000, 320e-6, 900)},
              {DIRECT: target(21000, 150e-6, 3100), "halab": target(9000, 300e-6, 1100), "squid": target(10000, 300e-6, 1000)}]
    lines = proxy_summary(rounds)
    halab = next(line for line in lines if line.startswith("halab"))
    assert "0.98 (0.90-1.05)" in halab  # req/s vs Squid, within each round
    assert lines[-1].startswith("verdict: req/s 0.98 x Squid (NOT met: >= 1.0); added p50 0.84 x Squid (met: <= 1.0)")


def test_the_cache_bench_judges_hits_against_nginx_and_squid():
    from lab.bench_cache import cache_summary

    def target(rps, p50):
        return {"rps": rps, "p50_1conn": p50}

    rounds = [{"halab gateway": target(45000, 90e-6), "nginx": target(50000, 80e-6), "halab proxy": target(20000, 120e-6),
               "squid": target(40000, 100e-6)}]
    assert cache_summary(rounds)[-1] == ("verdict: gateway hits 0.90 x nginx's req/s (met: >= 0.5), p50 1.12 x nginx's (met: <= 1.5); "
                                         "proxy hits 0.50 x Squid's req/s (NOT met: >= 1.0)")
    rounds[0]["varnish"] = target(60000, 60e-6)
    assert "beside Varnish: gateway hits 0.75 x Varnish's req/s, p50 1.50 x Varnish's" in cache_summary(rounds)


def test_nginx_renders_its_cache_only_when_asked():
    from lab.core.scenario import BalancerSettings

    servers = [{"name": "o1", "address": "10.3.0.11", "port": 80}]
    plain = nginx_config(BalancerSettings(), servers, "gw1", "/p", "/w")
    cached = nginx_config(BalancerSettings(), servers, "gw1", "/p", "/w", cache_dir="/run/halab/ctl/gw1-nginx-cache")
    assert "proxy_cache" not in plain
    assert "proxy_cache_path /run/halab/ctl/gw1-nginx-cache keys_zone=halab:10m" in cached and "proxy_cache halab;" in cached


def test_nginx_cache_lines_become_cache_results_and_hits_are_not_routed():
    from lab.services.realbalancer import cache_line, parse_line

    hit = cache_line("ROUTED 1700000000.500 0.000 c1-7 - 200 HIT")
    assert hit[0] == "cache_result" and (hit[1]["squid"], hit[1]["result"], hit[1]["id"]) == ("TCP_HIT", "HIT", "c1-7")
    miss = cache_line("ROUTED 1700000001.500 0.004 c1-8 10.0.0.11:80 200 MISS")
    assert miss[1]["squid"] == "TCP_MISS"
    assert parse_line("nginx", "ROUTED 1700000001.500 0.004 c1-8 10.0.0.11:80 200", {"10.0.0.11:80": "o1"})[1]["server"] == "o1"
    assert cache_line("ROUTED 1700000001.500 0.004 c1-8 10.0.0.11:80 200") is None  # no cache: no cache_result


def test_the_l4_bench_judges_nat_and_the_relay_against_haproxy_tcp_round_by_round():
    from lab.bench_l4 import DIRECT, l4_summary

    def cell(rps, flows, p50):
        return {"rps": rps, "flows": flows, "p50_1conn": p50}

    rounds = [{DIRECT: cell(80000, 12000, 70e-6), "nft NAT": cell(60000, 11000, 72e-6), "halab relay": cell(30000, 4000, 100e-6),
               "HAProxy tcp": cell(40000, 9000, 90e-6), "halab L7": cell(18000, 8000, 140e-6)}] * 3
    verdict = l4_summary(rounds)[-1]
    # NAT adds 2 us where HAProxy adds 20 us (0.10 x); 60000 / 40000 = 1.50 x req/s; the relay 0.75 x
    assert "nft NAT added p50 0.10 x HAProxy tcp (met: <= 0.5)" in verdict
    assert "nft NAT req/s 1.50 x (met: >= 1.5)" in verdict and "halab relay req/s 0.75 x (met: >= 0.7)" in verdict
    rounds = [{**rounds[0], "halab relay": cell(20000, 4000, 100e-6)}] * 3
    assert "halab relay req/s 0.50 x (NOT met: >= 0.7)" in l4_summary(rounds)[-1]


def test_haproxy_and_nginx_drop_a_clients_x_forwarded_host_unless_it_is_trusted():
    import dataclasses

    b = load_scenario("exercises/02-balancing-algorithms/weighted.toml").balancer
    trusting = dataclasses.replace(b, client=dataclasses.replace(b.client, trust_forwarded_host=True))
    assert "http-request del-header X-Forwarded-Host" in haproxy_config(b, SERVERS, "lb1", "/tmp/p")
    assert "X-Forwarded-Host" not in haproxy_config(trusting, SERVERS, "lb1", "/tmp/p")
    assert 'proxy_set_header X-Forwarded-Host "";' in nginx_config(b, SERVERS, "lb1", "/tmp/p", "/tmp")
    assert "X-Forwarded-Host" not in nginx_config(trusting, SERVERS, "lb1", "/tmp/p", "/tmp")


def test_the_scale_bench_derives_the_machines_limits_from_the_per_origin_costs():
    from lab.bench_scale import scale_summary

    rows = [{"origins": 10, "build": 1.0, "ready": 2.0, "served": 0.1, "memory_mib": 300.0, "pss_mib": 250.0, "teardown": 1.0},
            {"origins": 50, "build": 3.0, "ready": 8.0, "served": 0.5, "memory_mib": 1100.0, "pss_mib": 1000.0, "teardown": 3.0}]
    lines = scale_summary(rows, total_kib=4 * 1024 * 1024, cores=8)
    assert lines[2].split() == ["50", "3.0s", "8.0s", "11.0s", "1100", "MiB", "1000", "MiB", "3.0s"]
    # 20 MiB and 200 ms per origin; 80 % of 4 GiB is 3277 MiB: (3277 - 1100) / 20 + 50 = 159 origins, booting in 3 + 0.2 * 149 s
    assert lines[3] == ("each origin costs about 20.0 MiB and 200 ms of boot on this machine (8 cores, 4.0 GiB): 80 % of its "
                        "memory would hold about 159 origins, booting in about 33 s")
    close = [dict(rows[0]), dict(rows[0], origins=20, memory_mib=290.0)]  # less memory lost with more origins: noise
    assert scale_summary(close, total_kib=4 * 1024 * 1024, cores=8)[3].startswith("each origin costs about 0 ms of boot; the sizes are too close")
