"""The forward proxy: the server a client *chooses* to send its requests through.

A client configured with a proxy (``curl -x 10.1.0.2:3128``, a browser's
proxy setting, a PAC file) sends it every request with the whole URL in the
request line (``GET http://gw1/ HTTP/1.1``, RFC 9112 3.2.2) or asks it for a
tunnel (``CONNECT gw1:443``). What this proxy does with one, in order:

1. decides (``lab.core.forward.admit``): where it goes, whether it came
   around (this proxy's name already in ``Via``: a loop), who asks
   (``Proxy-Authorization: Basic``, checked against ``[proxy] users``), and
   whether the access rules allow it (``lab.core.acl``, Squid's ``acl`` and
   ``http_access`` lines). A refusal is a 403 naming the rule that matched,
   or a 407 with ``Proxy-Authenticate``, and a ``proxy_request`` event;
2. forwards a plain request over a kept-alive connection to the origin:
   back in origin form, Host from the URL, ``Proxy-Authorization`` and the
   other hop-by-hop headers removed, ``X-Forwarded-For`` as the
   ``forwarded_for`` setting says, ``Via: 1.1 fp1 (halab)`` added, and the
   same ``Via`` on the answer on its way back;
3. or opens a tunnel (``lab.services.tunnel``) and relays bytes it cannot
   read, logging only ``host:port``, the byte counts and the duration.

Host names are looked up in the lab's own table (every node's name and
address, from the plan), never in DNS: the lab has none, and an unknown
name is a 503 as Squid's ERR_DNS_FAIL. The data path is the gateway's
(``lab.services.proxy``, ``lab.services.intermediary``), so the hostile-HTTP
defences, timeouts and limits are the same.

Config keys: the ``[proxy]`` settings (``lab.core.forward.ProxySettings``),
hosts, bind, node, events, control.
"""
from __future__ import annotations

import asyncio
import ipaddress
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from lab.core.cache import CacheSettings, cache_key
from lab.core.client_limits import ClientLimits
from lab.core.forward import RESULTS, Destination, ProxySettings, Refusal, admit, origin_request
from lab.core.health import READY_PATH
from lab.core.http1 import Head, HttpError, render_response
from lab.core.schema import as_config, from_config
from lab.services.cache_layer import CacheLayer
from lab.services.exchange import DONE, Exchange
from lab.services.httpio import within
from lab.services.intermediary import Intermediary
from lab.services.proxy import ClientSide
from lab.services.runtime import Context, listen, serve, server_tls, until_stopped
from lab.services.tunnel import ESTABLISHED, SERVER, Tunnel


def plan(scenario: Any, addresses: Mapping[str, str], run_dir: Path) -> list[Any]:
    """One proxy per node of the topology's ``proxy`` role, halab's or Squid (``impl``, ``impls``)."""
    from lab.net.roles import CONTROL_DIR, ServiceSpec, base_config, own_addresses, tls_files

    settings: ProxySettings = scenario.roles["proxy"]
    hosts = {name: addresses[name] for name in scenario.layout.nodes if name in addresses}
    specs = []
    for node in scenario.layout.by_role("proxy"):
        cfg = base_config(node, "proxy", run_dir)
        cfg.update(as_config(settings), impl=settings.impl_of(node), hosts=hosts, bind=own_addresses(scenario, addresses, node))
        if settings.tls_port:
            cfg.update(tls_files(run_dir, node, cfg["bind"]))
        if cfg["impl"] == "squid":
            from lab.net.render import squid_config

            # Squid reads its hosts and password files as the unprivileged user it becomes, which may not
            # pass through the run directory's parents (a home directory, pytest's tmp): they live beside
            # the control sockets instead, which the lab records and removes (also after a crash)
            work = f"{CONTROL_DIR}/{node}-squid"
            cfg.update(conf_path=str(run_dir / "conf" / f"{node}-squid.conf"), workdir=work,
                       conf_text=squid_config(settings, node, cfg["bind"], work))
        specs.append(ServiceSpec(node, "proxy", cfg))
    return specs


ADMITTED = 4096  # admission decisions remembered (ForwardProxy.check)


def _values(index: dict[str, list[str]], name: str) -> tuple[str, ...] | None:
    values = index.get(name)
    return tuple(values) if values else None


class Origin:
    """Where a proxied request goes (the ``Upstream`` seam): named host:port as the client wrote it."""

    __slots__ = ("name", "address", "port")

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name = name
        self.address = address
        self.port = port


class ProxyClient(ClientSide):
    """A client connection to the proxy: the gateway's data path, with the proxy's admission and rewriting."""

    def __init__(self, proxy: "ForwardProxy") -> None:
        super().__init__(proxy)
        self.proxy = proxy
        self.dest: Destination | None = None  # the current request's (one request at a time per connection)
        self.user: str | None = None

    def admit(self, head: Head, framing: str, length: int) -> bool:
        if head.target == READY_PATH and head.method == "GET":  # VRRP tracking asks whether this proxy can serve
            self.dest = None
            return False
        self.dest, self.user = self.proxy.check(self.ip, head)
        if head.method == "CONNECT":
            return False
        return self.admit_body(head, framing, length)

    def forward(self, head: Head, raw: bytes, streamed: bool = False, chunked: bool = False) -> bytes:
        if self.dest is None:
            return b""  # answered here (READY_PATH)
        return origin_request(head, raw, self.dest, self.ip, self.proxy.via, self.proxy.settings.forwarded_for, chunked)

    def deferred(self, head: Head, raw: bytes) -> Callable[[], bytes] | None:
        """With a cache, a GET or HEAD is rewritten for the origin only if the cache asks the origin (a hit never does)."""
        if self.dest is None or not self.cache_may_answer(head):
            return None
        # its destination bound now: the next request on this connection has its own
        return partial(origin_request, head, raw, self.dest, self.ip, self.proxy.via, self.proxy.settings.forwarded_for)


class ForwardProxy(Intermediary):
    def __init__(self, ctx: Context) -> None:
        self.settings = s = from_config(ProxySettings, ctx.config)
        super().__init__(ctx.node, ctx.log, ClientLimits(), s.timeout_connect, s.timeout_server, via=f"{ctx.node} (halab)")
        self.policy = s.policy()
        self.admitted: dict[tuple[Any, ...], tuple[Destination, str | None]] = {}  # check's memory
        self.hosts: dict[str, str] = {k.lower(): v for k, v in ctx.config["hosts"].items()}
        self.tunnels: set[Tunnel] = set()
        self.tunnelled = 0
        self.denied = 0
        # the cache answers what it can before any origin is asked; None (off) costs one test per request
        self.cache = CacheLayer(self, CacheSettings(enabled=True), self.cache_key, s.log_requests) if s.cache else None
        ctx.commands["stats"] = lambda req: self.statistics()

    def statistics(self) -> dict[str, Any]:
        return {"requests": self.requests, "denied": self.denied, "bad_requests": self.bad_requests, "refused": dict(self.refusals),
                "tunnels_open": len(self.tunnels), "tunnels": self.tunnelled, "in_flight": self.in_flight,
                "errors": dict(self.errors)}

    # ---- deciding ----------------------------------------------------------------------
    def resolve(self, host: str) -> str | None:
        """An address for a host: itself when it is one, else the lab's table of node names (no DNS in the lab)."""
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return self.hosts.get(host)

    def check(self, client_ip: str, head: Head) -> tuple[Destination, str | None]:
        """``admit``'s answer, remembered for what it reads: the same client, method and target with the same Host,
        Via and Proxy-Authorization lines always get the same destination and user (the hosts, users and rules are
        fixed for the proxy's life; with a ``time`` acl, the minute is part of the key). Half the work a cache hit
        costs a forward proxy is this decision; a refusal is decided afresh every time (its answer is logged)."""
        index = head.index
        key = (client_ip, head.start[0], head.start[1], _values(index, "host"), _values(index, "via"),
               _values(index, "proxy-authorization"), int(time.time() // 60) if self.policy.timed else 0)
        admitted = self.admitted.get(key)
        if admitted is None:
            s = self.settings
            admitted = admit(head, client_ip, self.name, self.policy, s.users, s.realm, datetime.now(), self.resolve)
            if len(self.admitted) >= ADMITTED:
                self.admitted.clear()  # a cheap bound: forgotten all at once when full
            self.admitted[key] = admitted
        return admitted

    def refused(self, client_ip: str, e: HttpError) -> None:
        super().refused(client_ip, e)
        if isinstance(e, Refusal):
            self.denied += 1
            r = e.request
            self.log.emit("proxy_request", client=client_ip, method=r.method, url=r.url, status=e.status, result=RESULTS[e.kind],
                          duration=0.0, user=r.user, rule=e.decision.explain())

    # ---- forwarding ------------------------------------------------------------------
    def dispatch(self, x: Exchange) -> None:
        if x.head.target == READY_PATH:
            x.state = DONE
            x.client.write(render_response(200, b"ready\n", [("Via", f"1.1 {self.via}"), ("Cache-Control", "no-store")], x.keep))
            x.client.finish(x.keep)
            return
        x.add_host = False  # Host always comes from the URL (origin_request)
        x.started = time.monotonic()
        if self.cache is not None and x.head.method != "CONNECT":
            self.cache.handle(x)
        else:
            self.admit_exchange(x)

    def cache_key(self, x: Exchange) -> str:
        """The effective URI the client named (its absolute form), as the cache keys it."""
        dest = self._dest(x)
        return cache_key(dest.authority, dest.target)

    def attempt(self, x: Exchange) -> None:
        if x.head.method == "CONNECT":
            asyncio.get_running_loop().create_task(self.tunnel(x))
            return
        dest = self._dest(x)
        address = self.resolve(dest.host)
        if address is None:
            self.answer_error(x, 503, f"cannot resolve {dest.host!r}: this lab's names are its nodes' ({', '.join(sorted(self.hosts))})",
                              [], "dns_error")
            return
        self.send(x, Origin(f"{dest.host}:{dest.port}", address, dest.port))

    def ended(self, x: Exchange, status: int, error: str | None) -> None:
        if not self.settings.log_requests:
            return
        client = x.client  # a ProxyClient, or the cache's Fetch acting for one (it carries the same dest and user)
        self.log.emit("proxy_request", client=client.ip, method=x.head.method, url=x.head.target, status=status,
                      result=RESULTS["error" if error else "forwarded"], duration=round(time.monotonic() - x.started, 6),
                      user=getattr(client, "user", None), server=x.server.name if x.server is not None else None, error=error,
                      id=x.head.get("X-Request-Id"))

    @staticmethod
    def _dest(x: Exchange) -> Destination:
        dest = getattr(x.client, "dest", None)  # a ProxyClient's, or the cache's Fetch acting for one
        assert dest is not None
        return dest

    # ---- tunnels -----------------------------------------------------------------------
    async def tunnel(self, x: Exchange) -> None:
        """CONNECT: connect to host:port, answer 200, then relay both ways until either side is done."""
        dest = self._dest(x)
        client = x.client
        assert isinstance(client, ProxyClient)
        address = self.resolve(dest.host)
        if address is None:
            self.answer_error(x, 503, f"cannot resolve {dest.host!r}", [], "dns_error")
            return
        x.server = Origin(f"{dest.host}:{dest.port}", address, dest.port)
        user = client.user
        tunnel = Tunnel(self.settings.timeout_tunnel, lambda t, why: self.tunnel_closed(t, why, client.ip, dest, user))
        try:
            await within(self.timeout_connect, asyncio.get_running_loop().create_connection(lambda: tunnel.ends[SERVER], address, dest.port))
        except (asyncio.TimeoutError, OSError) as e:
            tunnel.on_close = lambda t, why: None
            tunnel.close("failed")
            timeout = isinstance(e, asyncio.TimeoutError)
            why = (f"no TCP connection to {x.server.name} within {self.timeout_connect:g} s" if timeout
                   else f"cannot connect to {x.server.name}: {getattr(e, 'strerror', None) or e}")
            x.keep = False
            self.errors[x.server.name] += 1
            self.answer_error(x, 504 if timeout else 502, why, [], "connect_timeout" if timeout else "connect_error")
            return
        if client.closed:  # the client left while we connected
            tunnel.close("client_gone")
            self.done_with(x)
            return
        client.write(ESTABLISHED)
        early = bytes(client.buffer)
        client.buffer = bytearray()
        self.tunnels.add(tunnel)
        self.tunnelled += 1
        tunnel.join(client.detach(), early)
        self.done_with(x)  # the HTTP part of this exchange is over; the tunnel lives on by itself

    def tunnel_closed(self, tunnel: Tunnel, why: str, client_ip: str, dest: Destination, user: str | None) -> None:
        self.tunnels.discard(tunnel)
        self.log.emit("proxy_request", client=client_ip, method="CONNECT", url=dest.authority, status=200, result=RESULTS["tunnel"],
                      duration=round(tunnel.duration, 6), user=user, server=f"{dest.host}:{dest.port}", up=tunnel.up,
                      down=tunnel.down, reason=why)


async def main(ctx: Context) -> None:
    proxy = ForwardProxy(ctx)
    port = proxy.settings.port
    listeners = await listen(lambda: ProxyClient(proxy), list(ctx.config["bind"]), port)
    if proxy.settings.tls_port:  # an HTTPS proxy: TLS from the client to here, then the same proxy inside it
        listeners += await listen(lambda: ProxyClient(proxy), list(ctx.config["bind"]), proxy.settings.tls_port, tls=server_tls(ctx.config))
    ctx.ready(port=port, tls_port=proxy.settings.tls_port or None, bind=list(ctx.config["bind"]))
    await until_stopped(ctx, listeners)
    for tunnel in list(proxy.tunnels):
        tunnel.close("stopped")


if __name__ == "__main__":
    serve(main)
