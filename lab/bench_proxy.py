"""``halab bench proxy``: halab's forward proxy against Squid, same network, same run.

One proxy_chain network with one client: halab's proxy on fp1, Squid 5.7 on
fp2 (both from the same ``[proxy]`` settings, access logs off, Squid caching
nothing), the gateway and origins behind. In rotated order each round, wrk
on c1 measures:

- the gateway reached directly (the baseline: no proxy on the way);
- each proxy, with wrk's requests in absolute form (a small Lua script sets
  ``wrk.path`` to the full URL, as a client configured with a proxy sends);

as throughput (``connections`` connections: req/s) and as the latency one
request gains by crossing the proxy (one connection, p50 minus the direct
p50 of the same round). Then a CONNECT tunnel's throughput: curl downloads
a large body from a plain TCP sender on gw1:443 through each proxy's tunnel
(``curl -p``), and directly, in MB/s.

The targets are written against Squid: halab at least 1.0x its req/s, at
most 1.0x its added p50, as a median over the rounds.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from lab.bench import one_connection_p50, parse_wrk, rotated, spread
from lab.core.scenario import parse_scenario
from lab.net.lab import Lab, LabError
from lab.net.roles import plan_services

GATEWAY = "10.2.0.2"
PROXIES = {"halab": "10.1.0.2", "squid": "10.1.0.3"}
DIRECT = "direct to gw1"
BLOB_MB = 200
# A plain TCP sender for the tunnel measurement: answers any request with BLOB_MB of zeros, then closes.
BLOB_SERVER = r"""
import socket, sys
size, chunk = int(sys.argv[2]), b"\0" * (1 << 20)
server = socket.create_server((sys.argv[1], 443))
while True:
    conn, _ = server.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            break
        data += more
    try:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        left = size
        while left > 0:
            conn.sendall(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
    except OSError:
        pass
    conn.close()
"""
Rounds = list[dict[str, dict[str, float]]]


def absolute_form_script(run_dir: Path) -> Path:
    """A wrk script whose requests name the whole URL, as a client configured with a proxy writes them."""
    script = run_dir / "absolute.lua"
    script.write_text(f'wrk.path = "http://{GATEWAY}/"\nwrk.headers["Host"] = "{GATEWAY}"\n')
    return script


def run_proxy_bench(run_dir: Path, seconds: float = 3.0, connections: int = 32, rounds: int = 3, say: Any = print) -> Rounds:
    import topologies

    scenario = parse_scenario({
        "name": "bench-proxy", "duration": 60,
        "topology": {"name": "proxy_chain", "clients": 1, "direct": 0, "proxies": 2, "origins": 3},
        "balancer": {"log_requests": False, "health": {"inter": 2.0}},
        "proxy": {"impls": {"fp2": "squid"}, "log_requests": False},
    }, "halab bench proxy", topologies.lookup)
    out: Rounds = []
    with Lab(scenario, run_dir, say=say) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, run_dir))
        c1 = lab.net["c1"]
        blob = lab.net["gw1"].popen([sys.executable, "-c", BLOB_SERVER, GATEWAY, str(BLOB_MB << 20)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.ledger.add_process(blob.pid, "gw1 blob sender")
        script = absolute_form_script(run_dir)
        targets = {DIRECT: f"http://{GATEWAY}/", **{name: f"-s {script} http://{address}:3128/" for name, address in PROXIES.items()}}
        for url in targets.values():  # everyone answers before anything is measured
            check = parse_wrk(c1.cmd(f"wrk -t1 -c1 -d1s {url}"))
            if check["non2xx"]:
                raise LabError(f"wrk got errors from {url}: is the proxy refusing it? ({check})")

        def tunnel(name: str) -> float:
            via = "" if name == DIRECT else f"-p -x {PROXIES[name]}:3128"
            speed = c1.cmd(f"curl -s -o /dev/null -m 30 -w '%{{speed_download}}' {via} http://{GATEWAY}:443/blob").strip()
            return float(speed or 0) / 1e6

        names = list(targets)
        for r in range(rounds):
            order = rotated(names, r)
            result: dict[str, dict[str, float]] = {}
            for name in order:
                c1.cmd(f"wrk -t1 -c{connections} -d1s {targets[name]} > /dev/null")  # warm up
                result[name] = parse_wrk(c1.cmd(f"wrk -t1 -c{connections} -d{seconds:g}s --latency {targets[name]}"))
            light = one_connection_p50(c1, targets, order)
            for name in order:
                result[name]["p50_1conn"] = light[name]
                result[name]["tunnel_mbs"] = tunnel(name)
                say(f"round {r + 1}/{rounds} {name:<14} {result[name]['rps']:9.0f} req/s  one connection p50 "
                    f"{result[name]['p50_1conn'] * 1e6:5.0f} us  tunnel {result[name]['tunnel_mbs']:7.1f} MB/s")
            out.append(result)
    return out


def proxy_summary(rounds: Rounds) -> list[str]:
    lines = [f"{len(rounds)} rounds; each cell: median (min-max) over the rounds, ratios taken within a round",
             "req/s: wrk with many connections; added p50: one connection, minus the direct-to-gateway p50 of the same round; "
             f"tunnel: a {BLOB_MB} MB download through CONNECT",
             f"{'target':<15}{'req/s':>22}{'added p50 (us)':>20}{'tunnel MB/s':>22}{'req/s vs Squid':>20}{'added vs Squid':>20}"]
    added = {name: [r[name]["p50_1conn"] - r[DIRECT]["p50_1conn"] for r in rounds] for name in rounds[0]}
    for name in rounds[0]:
        rps = [r[name]["rps"] for r in rounds]
        rps_ratio = [r[name]["rps"] / r["squid"]["rps"] for r in rounds]
        added_ratio = [a / s if s > 0 else float("nan") for a, s in zip(added[name], added["squid"])]
        lines.append(f"{name:<15}{spread(rps, '.0f'):>22}{spread([a * 1e6 for a in added[name]], '.0f'):>20}"
                     f"{spread([r[name]['tunnel_mbs'] for r in rounds], '.0f'):>22}"
                     + (f"{spread(rps_ratio, '.2f'):>20}{spread(added_ratio, '.2f'):>20}" if name != DIRECT else ""))
    rps_ok = statistics.median(r["halab"]["rps"] / r["squid"]["rps"] for r in rounds)
    added_ok = statistics.median(a / s for a, s in zip(added["halab"], added["squid"]) if s > 0) if any(s > 0 for s in added["squid"]) else float("nan")
    tunnel_ok = statistics.median(r["halab"]["tunnel_mbs"] / r["squid"]["tunnel_mbs"] for r in rounds if r["squid"]["tunnel_mbs"] > 0)
    # judged at the two decimals printed, so a shown 1.00 is never a miss
    lines.append(f"verdict: req/s {rps_ok:.2f} x Squid ({'met' if round(rps_ok, 2) >= 1.0 else 'NOT met'}: >= 1.0); "
                 f"added p50 {added_ok:.2f} x Squid ({'met' if round(added_ok, 2) <= 1.0 else 'NOT met'}: <= 1.0); "
                 f"tunnel {tunnel_ok:.2f} x Squid's MB/s")
    return lines
