"""``halab conformance cache``: the public HTTP cache test suite against halab's gateway cache.

cache-tests (Mark Nottingham's suite, npm ``http-cache-tests`` 0.4.5) runs
350 tests against a shared cache in gateway mode, 165 of them required by
RFC 9111. ``scripts/cache-tests/run-cache-tests.sh`` installs it on first use
(from the npm registry), starts its origin on 127.0.0.1:8000 and runs its
client against the cache. Here the cache is halab's balancer process with
``[balancer.cache] enabled = true``, on loopback (127.0.0.1:8081), one
server (the suite's origin) behind it: the same process a lab runs, without
a network around it, because the suite's origin and client both live on
loopback. Its events go to the run directory like a lab's.

The real caches' scores were measured on the course VM with the same suite
and runner, each in its reference configuration (``BASELINES``). With
``--impl varnish`` or ``--impl nginx`` the same run scores that cache as
halab renders it from the same ``[balancer]`` settings (``IMPLS``): the
comparison a lab makes, measured now on this machine. (Squid is halab's
forward proxy, not a gateway: the suite's gateway mode does not apply.)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab.core import client_limits
from lab.core.cache import CacheSettings
from lab.core.health import HealthSettings, ProbeSettings
from lab.core.scenario import BalancerSettings, OriginSettings
from lab.core.schema import build
from lab.net.errors import LabError
from lab.net.roles import balancer_config, server_entry

RUNNER = Path(__file__).resolve().parent.parent / "scripts" / "cache-tests" / "run-cache-tests.sh"
PORT = 8081
ORIGIN_PORT = 8000  # where the suite's origin listens
SUMMARY = re.compile(r"cache-tests: required passed (\d+)/(\d+), optional passed (\d+)/(\d+), failed (\d+), setup failures (\d+)")
# Measured on the course VM (Debian 12), cache-tests 0.4.5, each cache a gateway in the suite's reference configuration:
# required passed, optional passed, required failed, setup failures
BASELINES = {
    "Apache Traffic Server 9.2.5": (126, 65, 33, 3),
    "Squid 5.7": (122, 49, 22, 7),
    "Apache httpd 2.4.71": (120, 59, 26, 5),
    "Varnish 7.1.1": (108, 40, 30, 12),
    "HAProxy 2.6.12": (96, 32, 16, 7),
    "nginx 1.22.1": (94, 50, 45, 6),
}


IMPLS = ("halab", "varnish", "nginx")


def gateway_settings() -> BalancerSettings:
    return build(BalancerSettings, {
        "port": PORT, "bind": ("127.0.0.1",), "log_requests": False, "timeout_server": 10.0,
        # the suite's origin is up only while the suite runs: never mark it DOWN in between
        "probe": build(ProbeSettings, {"kind": "tcp"}), "health": HealthSettings(inter=0.5, rise=1, fall=100),
        "cache": CacheSettings(enabled=True), "client": client_limits.ClientLimits()})


def _servers() -> list[dict[str, Any]]:
    return [server_entry("origin", "127.0.0.1", build(OriginSettings, {"port": ORIGIN_PORT}))]


def gateway_config(run_dir: Path) -> dict[str, Any]:
    """halab's balancer with its cache on, in front of the suite's origin, as a lab would configure it."""
    cfg = balancer_config(gateway_settings(), _servers(), seed=1)
    cfg.update(node="gw1", service="balancer", events=str(run_dir / "events" / "gw1-balancer.jsonl"), bind=["127.0.0.1"])
    return cfg


def gateway_command(impl: str, run_dir: Path) -> list[str]:
    """The command that runs ``impl``'s gateway cache on 127.0.0.1:PORT, its configuration written under ``run_dir``."""
    if impl == "halab":
        config = run_dir / "gw1-balancer.json"
        config.write_text(json.dumps(gateway_config(run_dir), indent=1))
        return [sys.executable, "-m", "lab.services.balancer", "--config", str(config)]
    if impl == "varnish":
        from lab.net import render_varnish
        from lab.services.varnish import command

        b = gateway_settings()
        vcl = run_dir / "gw1-varnish.vcl"
        vcl.write_text(render_varnish.vcl(b, _servers(), "gw1"))
        return command({"port": PORT, "bind": ["127.0.0.1"], "workdir": str(run_dir / "varnish"), "conf_path": str(vcl),
                        "storage": render_varnish.storage(b), "params": render_varnish.parameters(b)})
    if impl == "nginx":
        from lab.net.render import nginx_config

        cache = run_dir / "nginx-cache"
        cache.mkdir()
        os.chmod(cache, 0o777)  # nginx's workers drop root
        conf = run_dir / "gw1-nginx.conf"
        conf.write_text(nginx_config(gateway_settings(), _servers(), "gw1", str(run_dir / "nginx.pid"), str(cache), ["127.0.0.1"],
                                     cache_dir=str(cache / "store")))
        return ["nginx", "-c", str(conf), "-g", "daemon off;"]
    raise LabError(f"no gateway cache {impl!r}: expected one of {', '.join(IMPLS)}")


def run_cache_conformance(run_dir: Path, say: Any = print, impl: str = "halab") -> dict[str, int]:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed: the cache test suite runs on Node.js (apt install nodejs npm)")
    for port in (PORT, ORIGIN_PORT):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                raise LabError(f"something already listens on 127.0.0.1:{port}; the suite needs it")
    (run_dir / "events").mkdir(parents=True, exist_ok=True)
    cmd = gateway_command(impl, run_dir)
    if shutil.which(cmd[0]) is None and not os.path.isabs(cmd[0]):
        raise LabError(f"{cmd[0]} is not installed (sudo make install installs it; or apt install varnish nginx-light)")
    log_path = run_dir / f"gw1-{impl}.log"
    with open(log_path, "wb") as log:
        gateway = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20  # varnishd compiles its VCL first
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", PORT)) == 0:
                    break
            if time.time() > deadline or gateway.poll() is not None:
                raise LabError(f"the {impl} gateway did not start: see {log_path}")
            time.sleep(0.1)
        say(f"cache-tests against {impl}'s gateway cache on 127.0.0.1:{PORT} (about 15 s)")
        out = subprocess.run(["bash", str(RUNNER), f"http://127.0.0.1:{PORT}", str(run_dir / "cache-tests.json")],
                             capture_output=True, text=True, timeout=1200)
    finally:
        gateway.terminate()
        try:
            gateway.wait(5)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait(5)
    (run_dir / "cache-tests.txt").write_text(out.stdout + out.stderr)
    m = SUMMARY.search(out.stdout)
    if m is None:
        raise LabError(f"the suite printed no summary (exit {out.returncode}): {(out.stdout + out.stderr)[-600:]}")
    required, required_total, optional, optional_total, failed, setup = map(int, m.groups())
    return {"required": required, "required_total": required_total, "optional": optional, "optional_total": optional_total,
            "failed": failed, "setup_failures": setup}


def table(score: dict[str, int], impl: str = "halab") -> list[str]:
    label = "halab (gateway cache)" if impl == "halab" else f"{impl} as halab renders it"
    rows = [(label, score["required"], score["optional"], score["failed"], score["setup_failures"])]
    rows += [(name, *numbers) for name, numbers in BASELINES.items()]
    lines = [f"{'cache':<30}{'required':>10}{'optional':>10}{'failed':>8}{'setup failures':>16}"]
    required_total, optional_total = score["required_total"], score["optional_total"]
    for name, req, opt, failed, setup in sorted(rows, key=lambda r: -r[1]):
        lines.append(f"{name:<30}{f'{req}/{required_total}':>10}{f'{opt}/{optional_total}':>10}{failed:>8}{setup:>16}")
    if impl != "halab":
        return lines  # the verdict is halab's
    best = max(BASELINES.items(), key=lambda kv: kv[1][0])
    verdict = "met" if score["required"] > best[1][0] else "NOT met"
    lines.append(f"verdict: {score['required']} required tests passed, against {best[1][0]} for the best real cache "
                 f"({best[0]}): {verdict} (more than every one of them)")
    return lines
