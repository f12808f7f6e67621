"""The forward proxy on the real network: what the origin sees, failover between proxies, parity with Squid, security.

The lesson's scenario (exercises/05-forward-proxy) is judged from the
origins' own logs and the clients' events; the parity test sends one set of
requests through halab's proxy (fp1) and Squid (fp2) in the same lab, from
the same scenario settings, and compares every status.
"""
import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from lab.core.forward import ProxySettings
from lab.net.faults import Faults
from lab.net.lab import Lab
from lab.net.roles import plan_services
from lab.runner import load_scenario

from .conftest import read_events, wait_until

LESSON = "exercises/05-forward-proxy/scenario.toml"


def parsed(run_dir, origin_prefix="o"):
    return [e for e in read_events(run_dir) if e["kind"] == "request_parsed" and e["node"].startswith(origin_prefix)
            and e["target"] != "/health"]


def test_the_origin_sees_the_proxy_not_the_client_and_the_via_chain(shipped):
    run_dir = Path(shipped(LESSON))
    seen = {e["id"]: e for e in parsed(run_dir) if e["id"]}
    proxied = [e for rid, e in seen.items() if rid.startswith(("c1-", "c2-"))]
    direct = [e for rid, e in seen.items() if rid.startswith("c3-")]
    assert len(proxied) > 500 and len(direct) > 250
    # through a proxy: Via names both hops in order; X-Forwarded-For is the client, then the proxy that passed it to gw1
    for e in proxied:
        proxy = e["via"].split(",")[0].split()[1]
        assert e["via"] == f"1.1 {proxy} (halab), 1.1 gw1", e
        assert e["forwarded_for"] in (f"10.1.0.10{e['id'][1]}, 10.1.0.2", f"10.1.0.10{e['id'][1]}, 10.1.0.3"), e
        assert "proxy-authorization" not in e["headers"] and "proxy-connection" not in e["headers"]
    for e in direct:  # direct: only the gateway's hop, and the client's own address
        assert (e["via"], e["forwarded_for"]) == ("1.1 gw1", "10.1.0.103"), e


def test_clients_fall_over_to_the_second_proxy_and_come_back_after_the_repair(shipped):
    events = read_events(Path(shipped(LESSON)))
    faults = {e["action"]: e["t"] for e in events if e["kind"] in ("fault_applied", "fault_reverted")}
    finished = [e for e in events if e["kind"] == "request_finished"]
    proxied = [e for e in finished if e["node"] in ("c1", "c2")]
    crash, repair = faults["crash"], faults["restart"]
    during = [e for e in proxied if crash + 0.1 < e["t"] < repair]
    late = [e for e in proxied if e["t"] > repair + 4.0]  # proxy_retry = 3 s: fp1 is tried again, and works
    assert during and all(e["proxy"] == "fp2" and e["ok"] for e in during)
    assert late and all(e["proxy"] == "fp1" and e["ok"] for e in late)
    assert {e["proxy"] for e in proxied if e["t"] < crash - 0.2} == {"fp1"}  # (one due just before may meet the crash)
    failovers = [e for e in events if e["kind"] == "proxy_failover"]
    assert failovers and all(crash <= e["t"] <= repair + 0.5 for e in failovers)
    assert all(e["proxy"] is None for e in finished if e["node"] == "c3")


# ---- halab's proxy and Squid side by side ----------------------------------------------------
RULES = """
acl staff src 10.1.0.101
acl login proxy_auth REQUIRED
acl blocked dstdomain .blocked.example
acl origin_lan dst 10.3.0.0/24
acl no_admin url_regex -i ^http://[^/]+/admin
acl no_post method POST
acl port_8080 port 8080
http_access deny blocked
http_access deny origin_lan
http_access deny no_admin
http_access deny no_post
http_access deny port_8080
http_access allow staff
http_access allow login
http_access deny all
"""
# (client, curl arguments, what the rules say): every acl type, CONNECT to 443 and 25, with and without credentials
CASES = [
    ("c1", "http://gw1/", "allowed: staff"),
    ("c1", "http://gw1/Admin/x", "url_regex -i"),
    ("c1", "-X POST -d x http://gw1/", "method"),
    ("c1", "http://o1/", "dst: the origin LAN"),
    ("c1", "http://gw1:8080/", "port"),
    ("c1", "http://www.blocked.example/", "dstdomain"),
    ("c1", "-p http://gw1:443/", "CONNECT to 443: a tunnel"),
    ("c1", "-p http://gw1:25/", "CONNECT to 25: stock rules"),
    ("c2", "http://gw1/", "not staff, no credentials: 407"),
    ("c2", "-U alice:wonderland http://gw1/", "proxy_auth with the right password"),
    ("c2", "-U alice:guess http://gw1/", "proxy_auth with a wrong password"),
    ("c2", "-U alice:wonderland -p http://gw1:443/", "an authenticated tunnel"),
]
EXPECTED = [(None, 200), (None, 403), (None, 403), (None, 403), (None, 403), (None, 403), (200, 200), (403, 0), (None, 407),
            (None, 200), (None, 407), (200, 200)]


def curl(host, proxy, args):
    """(CONNECT status or None, final status) of one request through ``proxy``, as curl saw it."""
    out = host.cmd(f"curl -s -o /dev/null -m 5 -w '%{{http_connect}} %{{http_code}}' -x {proxy} {args}").strip().split()
    connect, final = int(out[0]), int(out[1])
    return (connect or None) if "-p " in f"{args} " else None, final


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    base = load_scenario(LESSON)
    settings = ProxySettings(impls={"fp2": "squid"}, acl=RULES, users={"alice": "wonderland"})
    scenario = dataclasses.replace(base, faults=(), roles={**base.roles, "proxy": settings})
    run_dir = tmp_path_factory.mktemp("proxy-parity") / "run"
    with Lab(scenario, run_dir, say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        gw1 = lab.net["gw1"]
        # something to tunnel to: a web server on gw1's port 443 (plain HTTP: the tunnel does not care)
        web = gw1.popen(["python3", "-m", "http.server", "443", "--bind", "10.2.0.2"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        lab.ledger.add_process(web.pid, "gw1 http.server 443")
        try:
            for _ in range(50):
                if "443" in gw1.cmd("ss -ltn sport = :443"):
                    break
                gw1.cmd("sleep 0.1")
            results = {name: [curl(lab.net[client], f"{lab.addresses[name]}:3128", args) for client, args, _ in CASES]
                       for name in ("fp1", "fp2")}
            own = lab.net["c1"].cmd("curl -s -o /dev/null -w '%{http_code}' -m 5 -x 10.1.0.2:3128 http://10.1.0.2:3128/").strip()
        finally:
            web.terminate()
            web.wait(5)
    return results, run_dir, own  # the lab is gone before the next test builds its own


def test_halab_and_squid_decide_every_request_alike(side_by_side):
    results, _, _ = side_by_side
    table = [f"{why}: halab {h}, squid {s}" for (_, _, why), h, s in zip(CASES, results["fp1"], results["fp2"])]
    assert results["fp1"] == results["fp2"], "\n".join(table)
    assert results["fp1"] == EXPECTED, "\n".join(table)


def test_both_proxies_log_the_same_decisions_as_events(side_by_side):
    _, run_dir, _ = side_by_side
    events = read_events(run_dir)
    by_node = {n: [(e["method"], e["status"], e["result"]) for e in events if e["kind"] == "proxy_request" and e["node"] == n]
               for n in ("fp1", "fp2")}
    denied = {n: sum(1 for _, status, result in rows if result == "TCP_DENIED") for n, rows in by_node.items()}
    tunnels = {n: [r for r in rows if r[2] == "TCP_TUNNEL"] for n, rows in by_node.items()}
    assert denied["fp1"] == denied["fp2"] == 8  # 6 refusals by the rules, 2 requests asked to authenticate
    assert len(tunnels["fp1"]) == len(tunnels["fp2"]) == 2


def test_the_proxy_is_never_an_open_relay_to_itself(side_by_side):
    _, run_dir, own = side_by_side
    assert own == "403"  # absolute form aimed at the proxy itself comes around: a loop, refused
    loops = [e for e in read_events(run_dir) if e["kind"] == "request_rejected" and e["node"] == "fp1" and e["reason"] == "loop"]
    assert loops


def test_proxy_authorization_never_reaches_an_origin(side_by_side):
    _, run_dir, _ = side_by_side
    reached = [e for e in read_events(run_dir) if e["kind"] == "request_parsed" and e["target"] != "/health"]
    assert reached and not any("proxy-authorization" in e["headers"] for e in reached)


def test_a_squid_crash_heals_with_restart(tmp_path):
    base = load_scenario(LESSON)
    scenario = dataclasses.replace(base, faults=(), roles={**base.roles, "proxy": ProxySettings(impl="squid")})
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        c1 = lab.net["c1"]
        ask = "curl -s -o /dev/null -m 3 -w '%{http_code}' -x 10.1.0.2:3128 http://gw1/"
        before = c1.cmd(ask).strip()
        faults = Faults(lab)
        faults.apply("crash", "fp1")
        during = c1.cmd(ask).strip()
        faults.apply("restart", "fp1")
        after = c1.cmd(ask).strip()
        # Squid writes its access-log line when the transaction ends, a moment after curl has its answer
        logged = wait_until(lambda: [e for e in read_events(lab.run_dir) if e["node"] == "fp1" and e["kind"] == "proxy_request"
                                     and e["result"] == "TCP_MISS"][1:], 5, "second access-log line from the restarted Squid")
    assert (before, during, after) == ("200", "000", "200")
    assert logged and logged[0]["status"] == 200


# ---- encryption, on the wire -------------------------------------------------------------
def payloads(pcap, where=lambda ip, tcp: True):
    """(source, destination port, TCP payload) of each data packet in a capture."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    return [(p[IP].src, p[TCP].dport, bytes(p[TCP].payload)) for p in rdpcap(str(pcap))
            if IP in p and TCP in p and bytes(p[TCP].payload) and where(p[IP], p[TCP])]


def test_what_each_leg_carries_with_connect_an_https_proxy_and_plain_http(tmp_path):
    from lab.core.scenario import BalancerSettings
    from lab.packets.annotate import describe_tls

    base = load_scenario(LESSON)
    scenario = dataclasses.replace(base, faults=(), balancer=dataclasses.replace(base.balancer, tls_port=443),
                                   roles={**base.roles, "proxy": ProxySettings(tls_port=3129)})
    assert isinstance(scenario.balancer, BalancerSettings)
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        lab.capture(("c1-eth0", "gw1-eth0"))
        ca = lab.run_dir / "tls" / "ca.pem"
        c1, c3 = lab.net["c1"], lab.net["c3"]
        ask = "curl -s -o /dev/null -m 5 -w '%{http_code}' "
        c1.cmd("sleep 0.5")  # tcpdump is capturing
        codes = [c1.cmd(ask + f"--cacert {ca} -x 10.1.0.2:3128 https://gw1/secret-one").strip(),
                 c1.cmd(ask + f"--cacert {ca} --proxy https://10.1.0.2:3129 --proxy-cacert {ca} https://gw1/secret-two").strip(),
                 c1.cmd(ask + "-x 10.1.0.2:3128 http://gw1/plain-path").strip(),
                 c3.cmd(ask + f"--cacert {ca} --resolve gw1:443:10.2.0.2 https://gw1/direct").strip()]
        c1.cmd("sleep 0.5")
        run_dir = lab.run_dir
    assert codes == ["200"] * 4
    client_lan = payloads(run_dir / "pcap" / "c1-eth0.pcap")
    internet = payloads(run_dir / "pcap" / "gw1-eth0.pcap")
    lan_bytes = b"".join(p for _, _, p in client_lan)
    # the client LAN: CONNECT names the host in clear, the request inside the tunnel is not readable; plain HTTP is
    assert b"CONNECT gw1:443 HTTP/1.1" in lan_bytes and b"plain-path" in lan_bytes and b"secret" not in lan_bytes
    assert any((describe_tls(p) or "").startswith("TLS application data") for _, port, p in client_lan if port == 3128)
    # to the HTTPS proxy not even the CONNECT is visible: TLS from the first byte
    to_tls_proxy = [p for _, port, p in client_lan if port == 3129]
    assert to_tls_proxy and to_tls_proxy[0][:1] == b"\x16" and b"CONNECT" not in b"".join(to_tls_proxy)
    # the internet: the gateway is reached from the proxy's address (and c3's own), never from c1's
    sources = {src for src, port, _ in internet if port in (80, 443)}
    assert sources == {"10.1.0.2", "10.1.0.103"}
    assert b"secret" not in b"".join(p for _, _, p in internet)
    assert any(port == 80 and b"Via: 1.1 fp1 (halab)" in p for _, port, p in internet)
    # the origins: after TLS ends at gw1, X-Forwarded-For says who connected to gw1
    seen = {e["target"]: e["forwarded_for"] for e in read_events(run_dir) if e["kind"] == "request_parsed" and e["target"] != "/health"}
    assert seen == {"/secret-one": "10.1.0.2", "/secret-two": "10.1.0.2", "/plain-path": "10.1.0.101, 10.1.0.2", "/direct": "10.1.0.103"}
    # the proxy's own log of the tunnels: host:port and byte counts, never a path
    tunnels = [e for e in read_events(run_dir) if e["kind"] == "proxy_request" and e["method"] == "CONNECT"]
    assert [e["url"] for e in tunnels] == ["gw1:443", "gw1:443"] and all(e["up"] > 0 and e["down"] > 0 for e in tunnels)
    assert "secret" not in json.dumps([e for e in read_events(run_dir) if e["node"] == "fp1"])


def test_a_proxy_behind_a_router_heals_after_its_cable_and_its_power_come_back(tmp_path):
    """Setting an interface down deletes the routes through it; the repair must bring fp1's default route back."""
    base = load_scenario(LESSON)
    scenario = dataclasses.replace(base, faults=())
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        c1, fp1 = lab.net["c1"], lab.net["fp1"]
        ask = "curl -s -o /dev/null -m 3 -w '%{http_code}' -x 10.1.0.2:3128 http://gw1/"
        faults = Faults(lab)
        seen = [c1.cmd(ask).strip()]
        for broken, repaired in (("link_down", "link_up"), ("poweroff", "poweron")):
            faults.apply(broken, "fp1")
            seen.append(c1.cmd(ask).strip())
            faults.apply(repaired, "fp1")
            seen.append(c1.cmd(ask).strip())
        route = fp1.cmd("ip -4 route show default").strip()
    assert seen == ["200", "000", "200", "000", "200"]
    assert route.startswith("default via 10.1.0.254")


REDUNDANT = "exercises/05-forward-proxy/redundant-proxies.toml"


def test_a_pac_list_and_a_vrrp_pair_of_proxies_both_carry_the_clients_through_a_power_cut_and_back(shipped):
    events = read_events(Path(shipped(REDUNDANT)))
    faults = {e["action"]: e["t"] for e in events if e["kind"] in ("fault_applied", "fault_reverted")}
    cut, back = faults["poweroff"], faults["poweron"]
    finished = [e for e in events if e["kind"] == "request_finished"]
    by = {c: [e for e in finished if e["node"] == c] for c in ("c1", "c2", "c3")}
    # c1 moved on by itself (its list), c2 waited for fp2 to take the VIP (VRRP), c3 never noticed
    assert {e["proxy"] for e in by["c1"] if cut + 1 < e["t"] < back} == {"fp2"}
    assert {e["proxy"] for e in by["c2"] if e["ok"]} == {"10.1.0.1"}
    assert all(e["ok"] for e in by["c3"])
    takeover = next(e["t"] for e in events if e["kind"] == "vrrp_state_changed" and e["node"] == "fp2" and e["after"] == "MASTER"
                    and e["t"] > cut)
    assert takeover - cut < 0.36 + 0.1  # within Master_Down_Interval plus one advert interval
    # healed: both proxies' clients succeed again after the repair, on fp1 again (preempt; proxy_retry = 3 s)
    settled = [e for e in finished if e["t"] > back + 4.0]
    assert settled and all(e["ok"] for e in settled)
    assert {e["proxy"] for e in by["c1"] if e["t"] > back + 4.0} == {"fp1"}
    served_by = {e["node"] for e in events if e["kind"] == "proxy_request" and e.get("id", "") and e["id"].startswith("c2-")
                 and e["t"] > back + 4.0}
    assert served_by == {"fp1"}
