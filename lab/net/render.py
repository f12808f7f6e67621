"""Render halab balancer settings as HAProxy and nginx configurations (pure text).

The same ``BalancerSettings`` and server list become a config for the real
thing, so a student can diff what halab does against HAProxy or nginx on the
same network, and benchmarks compare like with like. ``DIRECTIVES`` says
how each halab algorithm is spelled there; ``lab.core.scenario.REAL_BALANCERS``
lists the same algorithms for checking a scenario (a unit test keeps the two
in step).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from lab.core.client_limits import ClientLimits
from lab.core.health import READY_PATH
from lab.core.scenario import BalancerSettings

# how each halab algorithm is spelled in the real daemon's config
DIRECTIVES = {
    "haproxy": {"roundrobin": "balance static-rr", "weighted_roundrobin": "balance roundrobin", "leastconn": "balance leastconn",
                "source": "balance source", "hash": "balance uri", "consistent": "balance uri\n    hash-type consistent",
                "random": "balance random(1)", "p2c": "balance random(2)"},
    "nginx": {"roundrobin": "", "weighted_roundrobin": "", "weighted_leastconn": "least_conn;", "source": "ip_hash;",
              "hash": "hash $request_uri;", "consistent": "hash $request_uri consistent;", "p2c": "random two least_conn;",
              "random": "random;"},
}
# HAProxy mode tcp ([l4] impl = "haproxy"): an L4 balancer sees no URI; source affinity hashes the client's address,
# as the kernel's jhash does (lab.core.l4.HAPROXY_TCP lists the same algorithms for checking a scenario)
HAPROXY_TCP_BALANCE = {"roundrobin": "balance static-rr", "weighted_roundrobin": "balance roundrobin", "leastconn": "balance leastconn",
                       "source": "balance source", "random": "balance random(1)", "p2c": "balance random(2)"}


def directive(impl: str, algorithm: str) -> str:
    table = DIRECTIVES[impl]
    if algorithm not in table:
        raise ValueError(f"algorithm {algorithm!r} has no {impl} rendering (have: {', '.join(table)})")
    return table[algorithm]


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _haproxy_rate_limit(c: ClientLimits) -> list[str]:
    """A stick table counting each address's requests over a period (HAProxy's way to say nginx's limit_req)."""
    if not c.rate_limit:
        return []
    period = 1 if c.rate_limit >= 1 else math.ceil(1 / c.rate_limit)
    most = round(c.rate_limit * period) + c.rate_burst
    return [f"    stick-table type ip size 100k expire {max(10, 2 * period)}s store http_req_rate({period}s)", "    http-request track-sc0 src",
            f"    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {most} }}"]


def _nginx_rate(rate: float) -> str:
    """nginx takes whole requests per second or per minute."""
    return f"{int(rate)}r/s" if rate == int(rate) else f"{max(1, round(rate * 60))}r/m"


def haproxy_config(b: BalancerSettings, servers: Sequence[dict[str, Any]], name: str, pidfile: str,
                   bind: Sequence[str] = ()) -> str:
    """``bind``: the addresses to listen on (empty: all); each gets ``transparent`` so a VIP can be bound while absent."""
    balance = directive("haproxy", b.algorithm)
    c = b.client
    h = b.health
    check = f"inter {_ms(h.inter)} rise {h.rise} fall {h.fall}"
    if h.fastinter:
        check += f" fastinter {_ms(h.fastinter)}"
    if h.downinter:
        check += f" downinter {_ms(h.downinter)}"
    lines = [
        # Logs go to stderr, where lab.services.realbalancer turns them into halab events:
        # health changes, and one ROUTED line per request (its accept date plus the
        # handshake, idle, receive and queue timers = when a server was chosen).
        "global", f"    pidfile {pidfile}", "    maxconn 4096", "    log stderr format rfc5424 local0 info",
        f"    tune.http.maxhdr {c.max_headers}", *([f"    tune.bufsize {c.max_head}"] if c.max_head != 16384 else []), "",
        "defaults", "    mode http", "    log global", f"    timeout connect {_ms(b.timeout_connect)}", f"    timeout server {_ms(b.timeout_server)}",
        f"    timeout client {_ms(c.timeout_client)}", f"    timeout http-request {_ms(c.timeout_http_request)}",
        f"    timeout http-keep-alive {_ms(c.timeout_keep_alive)}", f"    timeout check {_ms(h.check_timeout)}", "    option http-keep-alive", "",
        "frontend web", *([f"    bind {a}:{b.port} transparent" for a in bind] or [f"    bind *:{b.port}"]),
        *([f"    http-request deny deny_status 413 if {{ req.hdr(content-length) -m int gt {c.max_body} }}"] if c.max_body else []),
        *_haproxy_rate_limit(c),
        *([] if c.trust_forwarded_host else ["    http-request del-header X-Forwarded-Host"]),
        # the readiness question VRRP tracking asks, answered by HAProxy itself (halab's balancer does the same)
        f"    monitor-uri {READY_PATH}", "    monitor fail if { nbsrv(origins) lt 1 }",
        f"    http-request set-header Via \"1.1 {name}\"", "    option forwardfor",
        "    unique-id-format %[req.hdr(x-request-id)]", "    log-format \"ROUTED %Ts.%ms %Th %Ti %TR %Tw %ID %s %ST\"",
        "    http-after-response set-header X-Upstream %s", "    default_backend origins", "",
        "backend origins", f"    {balance}", f"    option httpchk GET {b.probe.path}",
        "    option log-health-checks",
        "    http-reuse always", f"    retries {b.retries}",
    ]
    if b.retries:
        lines.append("    option redispatch")
    for s in servers:
        lines.append(f"    server {s['name']} {s['address']}:{s['port']} check {check} weight {s.get('weight', 1)}" + (" backup" if s.get("backup") else ""))
    return "\n".join(lines) + "\n"


def haproxy_tcp_config(l4: Any, servers: Sequence[dict[str, Any]], pidfile: str, address: str) -> str:
    """HAProxy ``mode tcp`` from the ``[l4]`` settings (``lab.core.l4.L4Settings``): the L4 proxy halab's relay is compared with.

    ``option logasap`` logs each connection when its backend connection is
    made (not when it ends): one CONN line per connection, which
    ``lab.services.realbalancer`` turns into ``connection_routed``.
    """
    h = l4.health
    check = f"inter {_ms(h.inter)} rise {h.rise} fall {h.fall}"
    send_proxy = {"none": "", "v1": " send-proxy", "v2": " send-proxy-v2"}[l4.proxy_protocol]
    lines = [
        "global", f"    pidfile {pidfile}", "    maxconn 4096", "    log stderr format rfc5424 local0 info", "",
        "defaults", "    mode tcp", "    log global", f"    timeout connect {_ms(l4.timeout_connect)}", "    timeout client 60s",
        "    timeout server 60s", f"    timeout check {_ms(h.check_timeout)}", "",
        "frontend l4", f"    bind {address}:{l4.port}", "    option logasap", "    log-format \"CONN %Ts.%ms %ci:%cp %s %Tw %Tc\"",
        "    default_backend origins", "",
        "backend origins", f"    {HAPROXY_TCP_BALANCE[l4.algorithm]}", "    option log-health-checks", f"    retries {l4.retries}",
        *(["    option redispatch"] if l4.retries else []),
        *([f"    option httpchk GET {h.path}"] if h.kind == "http" else []),
    ]
    marked_down = " on-marked-down shutdown-sessions" if l4.flush_on_down else ""
    for s in servers:
        lines.append(f"    server {s['name']} {s['address']}:{s['port']} check {check} weight {s.get('weight', 1)}{send_proxy}{marked_down}"
                     + (" backup" if s.get("backup") else ""))
    return "\n".join(lines) + "\n"


def keepalived_config(node: str, iface: str, vip: str, vrid: int, priority: int, interval: float, preempt: bool,
                      track_port: int, track_weight: int, track_interval: float = 1.0, track_fall: int = 2, track_rise: int = 1,
                      preempt_delay: float = 0.0, garp_refresh: float = 0.0) -> str:
    """keepalived speaking VRRPv3 with the same group, priority, interval, tracking, preempt_delay and GARP refresh as halab's speaker.

    Tracking asks the balancer the same question halab's speaker asks
    (``GET /halab-ready``: can you serve?), starting failed (``init_fail``).
    """
    lines = ["global_defs {", f"    router_id {node}", "    vrrp_version 3", "    script_user root", "    enable_script_security",
             # a healed split brain moves the clients back: the loser advertises once as it yields,
             # the winner answers a lower-priority MASTER with GARP (halab's speaker does both)
             "    vrrp_garp_master_repeat 5", "    vrrp_higher_prio_send_advert true", "}", ""]
    if track_port:
        lines += ["vrrp_script local_balancer {",
                  f"    script \"/usr/bin/curl -sf -o /dev/null -m 1 http://127.0.0.1:{track_port}{READY_PATH}\"",
                  f"    interval {max(1, round(track_interval))}", "    timeout 1", f"    weight -{track_weight}", f"    fall {track_fall}",
                  f"    rise {track_rise}", "    init_fail", "}", ""]
    lines += [f"vrrp_instance VI_{vrid} {{", "    state BACKUP", f"    interface {iface}", f"    virtual_router_id {vrid}",
              f"    priority {priority}", f"    advert_int {interval:g}"]
    if not preempt:
        lines.append("    nopreempt")
    elif preempt_delay:
        lines.append(f"    preempt_delay {preempt_delay:g}")
    if garp_refresh:  # whole seconds in keepalived
        lines.append(f"    garp_master_refresh {max(1, round(garp_refresh))}")
    lines += ["    virtual_ipaddress {", f"        {vip}/24 dev {iface}", "    }"]
    if track_port:
        lines += ["    track_script {", "        local_balancer", "    }"]
    lines += ["}", ""]
    return "\n".join(lines)


def nginx_config(b: BalancerSettings, servers: Sequence[dict[str, Any]], name: str, pidfile: str, workdir: str,
                 bind: Sequence[str] = (), vips: Sequence[str] = (), cache_dir: str | None = None) -> str:
    """``bind``: the addresses to listen on (empty: all). nginx cannot bind an address the node does not
    hold yet (no freebind), so with ``vips`` it listens on all addresses, and says so in the config.
    ``cache_dir``: nginx's proxy_cache there (its defaults: GET and HEAD, the answer's own lifetime,
    no stale serving), saying what it did in X-Cache as halab's cache does."""
    balance = directive("nginx", b.algorithm)
    c = b.client
    if vips or not bind:
        listen = [f"        listen {b.port};" + ("  # all addresses: the VIPs come and go, and nginx cannot bind them ahead" if vips else "")]
    else:
        listen = [f"        listen {a}:{b.port};" for a in bind]
    passive = b.passive.max_fails
    fails = f" max_fails={passive} fail_timeout={_ms(b.passive.fail_timeout)}" if passive else " max_fails=0"
    upstream = [f"        server {s['address']}:{s['port']} weight={s.get('weight', 1)}{fails}" + (" backup" if s.get("backup") else "") + ";" for s in servers]
    names = [f"        {s['address']}:{s['port']} {s['name']};" for s in servers]
    # nginx has no active checks in open source: passive max_fails/fail_timeout stand in for them.
    return "\n".join([
        "worker_processes 1;", f"pid {pidfile};", "error_log stderr warn;", "events { worker_connections 4096; }",
        "http {", f"    client_body_temp_path {workdir};", f"    proxy_temp_path {workdir};",
        *([f"    proxy_cache_path {cache_dir} keys_zone=halab:10m max_size={b.cache.max_bytes // (1024 * 1024)}m;"] if cache_dir else []),
        # the same client limits as halab's and HAProxy's (nginx has no limit on the number of headers)
        f"    client_header_timeout {_ms(c.timeout_http_request)};", f"    client_body_timeout {_ms(c.timeout_client)};",
        f"    keepalive_timeout {_ms(c.timeout_keep_alive)};", f"    client_max_body_size {c.max_body};",
        f"    large_client_header_buffers 4 {c.max_line};",
        *([f"    limit_req_zone $binary_remote_addr zone=halab_rate:10m rate={_nginx_rate(c.rate_limit)};",
           f"    limit_req zone=halab_rate burst={c.rate_burst} nodelay;", "    limit_req_status 429;"] if c.rate_limit else []),
        # request start = end ($msec) - $request_time; halab turns these lines into request_routed events
        "    log_format routed 'ROUTED $msec $request_time $http_x_request_id $upstream_name $status"
        + (" $upstream_cache_status" if cache_dir else "") + "';",
        "    access_log /dev/stderr routed;",
        "    map $upstream_addr $upstream_name {", "        default $upstream_addr;", *names, "    }",
        "    upstream origins {", *([f"        {balance}"] if balance else []), *upstream,
        "        keepalive 64;", "    }",
        "    server {", *listen,
        # nginx has no monitor-uri: readiness is a health request through it to the origins
        f"        location = {READY_PATH} {{", "            proxy_pass http://origins/health;", "        }",
        "        location / {", "            proxy_pass http://origins;", "            proxy_http_version 1.1;",
        "            proxy_set_header Connection \"\";", "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        *([] if c.trust_forwarded_host else ["            proxy_set_header X-Forwarded-Host \"\";  # an empty value: not sent"]),
        f"            proxy_set_header Via \"1.1 {name}\";", f"            proxy_connect_timeout {_ms(b.timeout_connect)};",
        f"            proxy_read_timeout {_ms(b.timeout_server)};",
        "            proxy_next_upstream " + ("error timeout;" if b.retries else "off;"),
        f"            proxy_next_upstream_tries {b.retries + 1};",
        "            add_header X-Upstream $upstream_name always;",
        *(["            proxy_cache halab;",
           "            proxy_cache_revalidate on;  # an expired copy is revalidated with a conditional request, as halab's is",
           "            add_header X-Cache \"$upstream_cache_status from " + name + "\" always;"]
          if cache_dir else []),
        "        }", "    }", "}", ""])


# One access.log line per request, in fields halab reads back (lab.services.squid): client, Squid's result
# code and status, method, URL (host:port for CONNECT), user, milliseconds, bytes from and to the client,
# and the client's X-Request-Id (the id the report follows from hop to hop).
SQUID_LOGFORMAT = "HALAB %>a %Ss %>Hs %rm %ru %un %tr %>st %<st %{X-Request-Id}>h"


def squid_config(p: Any, name: str, bind: Sequence[str], workdir: str) -> str:
    """squid.conf from the same ``[proxy]`` settings as halab's forward proxy (``lab.core.forward.ProxySettings``).

    The acl and http_access lines are the scenario's, verbatim (with Squid's
    stock rules around them unless ``stock = false``), so what a student
    writes for one runs in the other. Nothing is cached (caching is its own
    lesson); the lab's node names are Squid's hosts file, as they are
    halab's proxy's table; Basic users come from an NCSA password file that
    the wrapper writes (``basic_ncsa_auth``).
    """
    ports = "\n".join(f"http_port {address}:{p.port}" for address in bind)
    auth = ""
    if p.users:
        auth = (f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {workdir}/passwd\n"
                f"auth_param basic realm {p.realm}\nauth_param basic children 2\n")
    timeouts = (f"connect_timeout {p.timeout_connect:g} seconds\nread_timeout {p.timeout_server:g} seconds\n"
                f"client_idle_pconn_timeout 10 seconds\n")
    return f"""# rendered by halab for {name} (lab/net/render.py: squid_config)
{ports}
visible_hostname {name}
pid_filename {workdir}/squid.pid
cache_log stdio:/dev/stderr
logformat halab {SQUID_LOGFORMAT}
access_log {"stdio:/dev/stdout halab" if p.log_requests else "none"}
logfile_rotate 0
coredump_dir {workdir}
{"" if p.cache else "cache deny all"}
hosts_file {workdir}/hosts
dns_nameservers 127.0.0.1
dns_timeout 2 seconds
forwarded_for {p.forwarded_for}
shutdown_lifetime 0 seconds
{timeouts}{auth}
{p.rules().strip()}
"""
