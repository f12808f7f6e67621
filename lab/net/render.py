"""Render halab balancer settings as HAProxy and nginx configurations (pure text).

The same ``BalancerSettings`` and server list become a config for the real
thing, so a student can diff what halab does against HAProxy or nginx on the
same network, and benchmarks compare like with like. Only round robin and
weighted round robin have a one-to-one mapping so far.
"""
from __future__ import annotations

from typing import Any, Sequence

from lab.core.scenario import BalancerSettings

HAPROXY_BALANCE = {"roundrobin": "static-rr", "weighted_roundrobin": "roundrobin", "leastconn": "leastconn", "source": "source"}
NGINX_BALANCE = {"roundrobin": "", "weighted_roundrobin": "", "weighted_leastconn": "least_conn;", "source": "ip_hash;"}


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def haproxy_config(b: BalancerSettings, servers: Sequence[dict[str, Any]], name: str, pidfile: str) -> str:
    if b.algorithm not in HAPROXY_BALANCE:
        raise ValueError(f"algorithm {b.algorithm!r} has no HAProxy rendering yet (have: {', '.join(HAPROXY_BALANCE)})")
    h = b.health
    check = f"inter {_ms(h.inter)} rise {h.rise} fall {h.fall}"
    if h.fastinter:
        check += f" fastinter {_ms(h.fastinter)}"
    if h.downinter:
        check += f" downinter {_ms(h.downinter)}"
    lines = [
        "global", f"    pidfile {pidfile}", "    maxconn 4096", "",
        "defaults", "    mode http", f"    timeout connect {_ms(b.timeout_connect)}", f"    timeout server {_ms(b.timeout_server)}",
        "    timeout client 30s", f"    timeout check {_ms(h.check_timeout)}", "    option http-keep-alive", "",
        "frontend web", f"    bind *:{b.port}", f"    http-request set-header Via \"1.1 {name}\"", "    option forwardfor",
        "    default_backend origins", "",
        "backend origins", f"    balance {HAPROXY_BALANCE[b.algorithm]}", f"    option httpchk GET {b.health_path}",
        "    http-reuse always", f"    retries {b.retries}",
    ]
    if b.retries:
        lines.append("    option redispatch")
    for s in servers:
        lines.append(f"    server {s['name']} {s['address']}:{s['port']} check {check} weight {s.get('weight', 1)}" + (" backup" if s.get("backup") else ""))
    return "\n".join(lines) + "\n"


def nginx_config(b: BalancerSettings, servers: Sequence[dict[str, Any]], name: str, pidfile: str, workdir: str) -> str:
    if b.algorithm not in NGINX_BALANCE:
        raise ValueError(f"algorithm {b.algorithm!r} has no nginx rendering yet (have: {', '.join(NGINX_BALANCE)})")
    upstream = [f"        server {s['address']}:{s['port']} weight={s.get('weight', 1)}" + (" backup" if s.get("backup") else "") + ";" for s in servers]
    # nginx has no active checks in open source: passive max_fails/fail_timeout stand in for them.
    return "\n".join([
        "worker_processes 1;", f"pid {pidfile};", "error_log stderr warn;", "events { worker_connections 4096; }",
        "http {", "    access_log off;", f"    client_body_temp_path {workdir};", f"    proxy_temp_path {workdir};",
        "    upstream origins {", *(f"        {NGINX_BALANCE[b.algorithm]}" for _ in [0] if NGINX_BALANCE[b.algorithm]), *upstream,
        "        keepalive 64;", "    }",
        "    server {", f"        listen {b.port};",
        "        location / {", "            proxy_pass http://origins;", "            proxy_http_version 1.1;",
        "            proxy_set_header Connection \"\";", "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f"            proxy_set_header Via \"1.1 {name}\";", f"            proxy_connect_timeout {_ms(b.timeout_connect)};",
        f"            proxy_read_timeout {_ms(b.timeout_server)};",
        "            proxy_next_upstream " + ("error timeout;" if b.retries else "off;"),
        "        }", "    }", "}", ""])
