"""``halab bench cache``: cache hits, halab's against nginx's and Varnish's (gateway) and Squid's (forward proxy), same network, same run.

One proxy_chain network with one client. The origins answer ``max-age=3600``,
so after a warm-up every request is a hit. On gw1: halab's gateway cache
(port 80), nginx with proxy_cache (port 8082) and Varnish 7.1 (port 8083),
all from the same ``[balancer]`` settings. On the client LAN: halab's forward-proxy cache on
fp1 and Squid 5.7's memory cache on fp2, from the same ``[proxy]``
settings. In rotated order each round, wrk on c1 measures each cache's hit
throughput (``connections`` connections: req/s) and a hit's p50 with one
connection, one request at a time.

The targets (the median over the rounds): halab's gateway cache at least
0.5x nginx's hit req/s and at most 1.5x its hit p50; halab's proxy cache at
least 1.0x Squid's hit req/s. Varnish, the cache built for hits, is
measured beside them and its ratios printed.
"""
from __future__ import annotations

import dataclasses
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from lab.bench import one_connection_p50, parse_wrk, rotated, spread
from lab.bench_proxy import GATEWAY, absolute_form_script
from lab.core.scenario import parse_scenario
from lab.net.lab import Lab, LabError
from lab.net.render import nginx_config
from lab.net.roles import CONTROL_DIR, plan_services

NGINX_PORT = 8082
VARNISH_PORT = 8083
Rounds = list[dict[str, dict[str, float]]]


def _start_nginx(lab: Lab, scenario: Any, servers: list[dict[str, Any]], run_dir: Path) -> None:
    conf = run_dir / "conf"
    conf.mkdir(exist_ok=True)
    settings = dataclasses.replace(scenario.balancer, port=NGINX_PORT)
    # nginx's workers drop root: the cache lives beside the control sockets, which the lab removes (also after a crash)
    text = nginx_config(settings, servers, "gw1", str(conf / "nginx.pid"), str(conf), [GATEWAY], cache_dir=f"{CONTROL_DIR}/gw1-nginx-cache")
    (conf / "nginx.conf").write_text(text)
    with open(run_dir / "nginx.log", "wb") as log:
        proc = lab.net["gw1"].popen(["nginx", "-c", str(conf / "nginx.conf"), "-g", "daemon off;"], stdout=log, stderr=log)
    lab.ledger.add_process(proc.pid, "gw1 nginx (cache bench)")
    _wait_answering(lab, NGINX_PORT, proc, "nginx", run_dir / "nginx.log")


def _wait_answering(lab: Lab, port: int, proc: Any, what: str, log: Path, timeout: float = 5.0) -> None:
    deadline = time.time() + timeout
    while "200" not in lab.net["c1"].cmd(f"curl -s -o /dev/null -w '%{{http_code}}' -m 1 http://{GATEWAY}:{port}/"):
        if time.time() > deadline or proc.poll() is not None:
            raise LabError(f"{what} did not answer: see {log}")
        time.sleep(0.1)


def _start_varnish(lab: Lab, scenario: Any, servers: list[dict[str, Any]], run_dir: Path) -> None:
    from lab.net import render_varnish
    from lab.services.varnish import command

    settings = dataclasses.replace(scenario.balancer, port=VARNISH_PORT)
    vcl = run_dir / "conf" / "varnish.vcl"
    vcl.write_text(render_varnish.vcl(settings, servers, "gw1"))
    workdir = f"{CONTROL_DIR}/gw1-varnish-bench"  # its shared memory log: the lab removes the control directory
    shutil.rmtree(workdir, ignore_errors=True)
    cmd = command({"port": VARNISH_PORT, "bind": [GATEWAY], "workdir": workdir, "conf_path": str(vcl),
                   "storage": render_varnish.storage(settings), "params": render_varnish.parameters(settings)})
    with open(run_dir / "varnish.log", "wb") as log:
        proc = lab.net["gw1"].popen(cmd, stdout=log, stderr=log)
    lab.ledger.add_process(proc.pid, "gw1 varnishd (cache bench)")
    _wait_answering(lab, VARNISH_PORT, proc, "varnishd", run_dir / "varnish.log", timeout=20)  # it compiles its VCL first


def run_cache_bench(run_dir: Path, seconds: float = 3.0, connections: int = 32, rounds: int = 3, say: Any = print) -> Rounds:
    import topologies

    scenario = parse_scenario({
        "name": "bench-cache", "duration": 60,
        "topology": {"name": "proxy_chain", "clients": 1, "direct": 0, "proxies": 2, "origins": 3},
        "balancer": {"log_requests": False, "health": {"inter": 2.0}, "cache": {"enabled": True}},
        "proxy": {"impls": {"fp2": "squid"}, "log_requests": False, "cache": True},
        "origins": {"cache_control": "max-age=3600"},
    }, "halab bench cache", topologies.lookup)
    out: Rounds = []
    with Lab(scenario, run_dir, say=say) as lab:
        specs = plan_services(scenario, lab.addresses, run_dir)
        lab.start_all(specs)
        servers = next(s for s in specs if s.service == "balancer").config["servers"]
        _start_nginx(lab, scenario, servers, run_dir)
        with_varnish = shutil.which("varnishd") is not None
        if with_varnish:
            _start_varnish(lab, scenario, servers, run_dir)
        else:
            say("varnishd is not installed (apt install varnish): the gateway caches are compared with nginx only")
        c1 = lab.net["c1"]
        script = absolute_form_script(run_dir)
        proxy_url = f"http://{GATEWAY}/"
        targets = {"halab gateway": f"http://{GATEWAY}/", "nginx": f"http://{GATEWAY}:{NGINX_PORT}/",
                   **({"varnish": f"http://{GATEWAY}:{VARNISH_PORT}/"} if with_varnish else {}),
                   "halab proxy": f"-s {script} http://10.1.0.2:3128/", "squid": f"-s {script} http://10.1.0.3:3128/"}
        probes = {name: url for name, url in targets.items() if "proxy" not in name and name != "squid"}
        probes.update({"halab proxy": f"-x 10.1.0.2:3128 {proxy_url}", "squid": f"-x 10.1.0.3:3128 {proxy_url}"})
        for name, url in targets.items():  # fill each cache; then every request below is a hit, as X-Cache says
            c1.cmd(f"wrk -t1 -c4 -d1s {url} > /dev/null")
            said = c1.cmd(f"curl -s -D - -o /dev/null {probes[name]}")
            say(f"{name}: {' '.join(line.strip() for line in said.splitlines() if line.lower().startswith('x-cache'))}")
        names = list(targets)
        for r in range(rounds):
            order = rotated(names, r)
            result: dict[str, dict[str, float]] = {}
            for name in order:
                result[name] = parse_wrk(c1.cmd(f"wrk -t1 -c{connections} -d{seconds:g}s --latency {targets[name]}"))
            light = one_connection_p50(c1, targets, order)
            for name in order:
                result[name]["p50_1conn"] = light[name]
                say(f"round {r + 1}/{rounds} {name:<14} {result[name]['rps']:9.0f} req/s  one connection p50 "
                    f"{result[name]['p50_1conn'] * 1e6:5.0f} us  non-2xx {result[name]['non2xx']:.0f}")
            out.append(result)
    return out


def cache_summary(rounds: Rounds) -> list[str]:
    lines = [f"{len(rounds)} rounds of cache hits; each cell: median (min-max) over the rounds, ratios within a round",
             f"{'cache':<16}{'hit req/s':>22}{'hit p50, one connection (us)':>32}"]
    for name in rounds[0]:
        lines.append(f"{name:<16}{spread([r[name]['rps'] for r in rounds], '.0f'):>22}"
                     f"{spread([r[name]['p50_1conn'] * 1e6 for r in rounds], '.0f'):>32}")
    gw_rps = statistics.median(r["halab gateway"]["rps"] / r["nginx"]["rps"] for r in rounds)
    gw_p50 = statistics.median(r["halab gateway"]["p50_1conn"] / r["nginx"]["p50_1conn"] for r in rounds)
    px_rps = statistics.median(r["halab proxy"]["rps"] / r["squid"]["rps"] for r in rounds)
    if "varnish" in rounds[0]:
        vs_rps = statistics.median(r["halab gateway"]["rps"] / r["varnish"]["rps"] for r in rounds)
        vs_p50 = statistics.median(r["halab gateway"]["p50_1conn"] / r["varnish"]["p50_1conn"] for r in rounds)
        lines.append(f"beside Varnish: gateway hits {vs_rps:.2f} x Varnish's req/s, p50 {vs_p50:.2f} x Varnish's")
    # judged at the two decimals printed
    lines.append(f"verdict: gateway hits {gw_rps:.2f} x nginx's req/s ({'met' if round(gw_rps, 2) >= 0.5 else 'NOT met'}: >= 0.5), "
                 f"p50 {gw_p50:.2f} x nginx's ({'met' if round(gw_p50, 2) <= 1.5 else 'NOT met'}: <= 1.5); proxy hits "
                 f"{px_rps:.2f} x Squid's req/s ({'met' if round(px_rps, 2) >= 1.0 else 'NOT met'}: >= 1.0)")
    return lines
