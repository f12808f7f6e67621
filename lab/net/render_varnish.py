"""Render halab balancer settings as a Varnish 7 VCL and varnishd parameters (pure text): ``[balancer] impl = "varnish"``.

Varnish is a cache first and a balancer second, so this is the gateway
cache halab's is compared with (``halab bench cache``, ``halab conformance
cache --impl varnish``). What maps, and how:

- **Servers** are VCL backends; the algorithm is a director from
  ``vmod_directors``: ``round_robin``, ``random`` (weighted), ``hash`` on the
  URL or the client address, ``shard`` (consistent hashing). Backup servers
  sit behind a ``fallback`` director, used when no primary is healthy.
  Varnish has no least-connections director: those algorithms are refused
  when the scenario is read (``lab.core.scenario.REAL_BALANCERS``).
- **Health checks** are Varnish probes. HAProxy counts streaks (DOWN after
  ``fall`` failures in a row, UP after ``rise`` successes); Varnish counts a
  sliding window (healthy while at least ``threshold`` of the last ``window``
  probes passed). ``threshold = rise`` and ``window = rise + fall - 1`` give
  the same answer for a server that goes and stays down or up; a flapping
  one can differ, which is worth watching.
- **Retries**: ``vcl_backend_error`` retries on another server (the director
  chooses again) up to ``retries`` times.
- **The cache**: Varnish's own rules (builtin VCL), with halab's choices:
  no lifetime is made up for an answer that gives none (``default_ttl`` 0,
  Varnish's default is 120 s) and nothing stale is served beyond what the
  answer allows (``default_grace`` 0; ``stale-while-revalidate`` still
  gives grace), but a stale copy is kept an hour (``default_keep``) so it
  can be revalidated with a conditional request, as halab's cache does.
  Varnish always collapses concurrent misses (its waiting list);
  ``collapse = false`` sets ``req.hash_ignore_busy``. With the cache off
  every request is passed.
- **What it did** goes in ``X-Cache`` (``HIT|MISS|STALE|BYPASS from NODE``)
  and ``X-Upstream``; ``lab.services.varnish`` reads varnishncsa's lines
  (``NCSA_FORMAT``) back as halab events.
"""
from __future__ import annotations

from typing import Any, Sequence

from lab.core.health import READY_PATH
from lab.core.scenario import BalancerSettings

# halab algorithm -> (director, how a request picks from it)
DIRECTORS = {
    "roundrobin": ("round_robin", "halab.backend()"),
    "random": ("random", "halab.backend()"),
    "hash": ("hash", "halab.backend(req.url)"),
    "source": ("hash", "halab.backend(client.ip)"),
    "consistent": ("shard", "halab.backend(by=URL)"),
}
# One varnishncsa line per client request: start time, time to first byte, request id, the server that made the
# answer (X-Upstream, "-" for a synthetic one), status, and what the cache did (halab's X-Cache word).
NCSA_FORMAT = ("ROUTED %{VSL:Timestamp:Start[1]}x %{Varnish:time_firstbyte}x %{X-Request-Id}i %{X-Upstream}o %s "
               "%{VCL_Log:halab_cache}x")


KEEP = 3600  # seconds a stale copy is kept to revalidate with a conditional request (halab keeps it until evicted)


def _s(seconds: float) -> str:
    return f"{seconds:g}s"


def vcl(b: BalancerSettings, servers: Sequence[dict[str, Any]], name: str) -> str:
    if b.algorithm not in DIRECTORS:
        raise ValueError(f"algorithm {b.algorithm!r} has no Varnish director (have: {', '.join(DIRECTORS)})")
    director, pick = DIRECTORS[b.algorithm]
    h, p, c = b.health, b.probe, b.client
    probe = [f'    .url = "{p.path}";', f"    .interval = {_s(h.inter)};", f"    .timeout = {_s(h.check_timeout)};",
             f"    .window = {min(64, h.rise + h.fall - 1)};", f"    .threshold = {h.rise};",
             f"    .initial = {h.rise};"]  # start healthy, as HAProxy and halab do
    if p.expect_status:
        probe.append(f"    .expected_response = {p.expect_status};")
    # Varnish's probes speak HTTP only; a scenario asking Varnish for TCP or ICMP checks is refused when read, and
    # ``halab conformance`` (whose origin has no health page) renders none: every server counts as healthy
    probed = p.kind == "http"
    out = ["vcl 4.1;", "", "import directors;", "import std;", ""] + (["probe health {", *probe, "}", ""] if probed else [])
    for s in servers:
        out += [f"backend {s['name']} {{", f'    .host = "{s["address"]}";', f'    .port = "{s["port"]}";',
                f"    .connect_timeout = {_s(b.timeout_connect)};", f"    .first_byte_timeout = {_s(b.timeout_server)};",
                f"    .between_bytes_timeout = {_s(b.timeout_server)};", *(["    .probe = health;"] if probed else []), "}", ""]
    primaries = [s for s in servers if not s.get("backup")]
    backups = [s for s in servers if s.get("backup")]
    weighted = director in ("random", "hash")
    out += ["sub vcl_init {", f"    new halab = directors.{director}();"]
    out += [f"    halab.add_backend({s['name']}" + (f", {s.get('weight', 1)}" if weighted else "") + ");" for s in primaries]
    if director == "shard":
        out.append("    halab.reconfigure();")
    if backups:
        out += ["    new backups = directors.fallback();"]
        out += [f"    backups.add_backend({s['name']});" for s in backups]
    out += ["}", ""]
    recv = ["sub vcl_recv {", f"    set req.backend_hint = {pick};",
            *(["    if (!std.healthy(req.backend_hint)) {", "        set req.backend_hint = backups.backend();", "    }"]
              if backups else []),
            # the readiness question VRRP tracking asks, answered by Varnish itself (as HAProxy's monitor-uri)
            f'    if (req.url == "{READY_PATH}") {{',
            "        if (std.healthy(req.backend_hint)) {", "            return (synth(200));", "        }",
            "        return (synth(503));", "    }",
            *([] if c.trust_forwarded_host else ["    unset req.http.X-Forwarded-Host;"])]
    if not b.cache.enabled:
        recv.append("    return (pass);")
    elif not b.cache.collapse:
        recv.append("    set req.hash_ignore_busy = true;")
    recv += ["}", ""]
    out += recv
    out += ["sub vcl_hit {", '    set req.http.X-Halab-Cache = "HIT";', "    if (obj.ttl <= 0s) {",
            '        set req.http.X-Halab-Cache = "STALE";', "    }", "}", "",
            "sub vcl_miss {", '    set req.http.X-Halab-Cache = "MISS";', "}", "",
            "sub vcl_pass {", '    set req.http.X-Halab-Cache = "BYPASS";', "}", "",
            "sub vcl_backend_fetch {", "    unset bereq.http.X-Halab-Cache;", "}", "",
            "sub vcl_backend_response {", "    set beresp.http.X-Upstream = beresp.backend.name;"]
    out += [f'    if (std.integer(beresp.http.Content-Length, 0) > {b.cache.max_object}) {{',
            "        set beresp.uncacheable = true;", "        return (deliver);", "    }"] if b.cache.enabled else []
    out += ["}", "",
            "sub vcl_backend_error {",
            *([f"    if (bereq.retries < {b.retries}) {{", "        return (retry);", "    }"] if b.retries else []),
            "    set beresp.http.X-Upstream = beresp.backend.name;", "}", "",
            "sub vcl_deliver {",
            '    if (!req.http.X-Halab-Cache) {', '        set req.http.X-Halab-Cache = "-";', "    }",
            '    std.log("halab_cache:" + req.http.X-Halab-Cache);']
    if b.cache.enabled:
        out.append(f'    set resp.http.X-Cache = req.http.X-Halab-Cache + " from {name}";')
    out += ["}", ""]
    return "\n".join(out)


def parameters(b: BalancerSettings) -> list[str]:
    """varnishd ``-p`` settings from the same client limits and cache settings as halab's balancer."""
    c = b.client
    params = {"default_ttl": "0", "default_grace": "0", "default_keep": str(KEEP), "timeout_idle": f"{c.timeout_keep_alive:g}",
              "http_req_hdr_len": str(c.max_line), "http_req_size": str(max(c.max_head, 256)),
              "http_max_hdr": str(min(65535, max(32, c.max_headers))), "max_retries": str(max(b.retries, 0))}
    return [f"{k}={v}" for k, v in params.items()]


def storage(b: BalancerSettings) -> str:
    return f"malloc,{max(b.cache.max_bytes // (1024 * 1024), 1)}m"
