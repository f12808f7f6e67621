"""The L4 balancer: health checks and a table in the kernel (mode nat or dsr), or a TCP relay (mode proxy).

The control plane is the same in every mode: one ``HealthChecker`` (the L7
balancer's) probes every backend, and every UP/DOWN (and an operator's
drain) changes where *new* connections go.

- **nat**: the data plane is the kernel's (``lab.services.kernel_planes``).
  On every change the slot table is rebuilt (``lab.core.l4``) and the whole
  nftables table replaced in one transaction. Established flows are pinned
  by conntrack and are not touched by a table change: with ``flush_on_down``
  the flows of a backend that went DOWN are deleted from conntrack, so their
  next packet finds no binding and the client gets a reset instead of
  waiting on a dead server. If this process dies (a ``crash`` fault), the
  table stays in the kernel: flows keep being balanced, but nobody takes a
  dead backend out any more.
- **dsr**: direct server return, the destination MAC rewritten at ingress;
  no state at all. ``impl = "ipvs"`` runs either on the kernel's IPVS.
- **proxy**: halab's TCP relay (``lab.services.tcp_relay``).

Config keys: node, address, servers, mode, the [l4] settings (health as a
table), seed, events, control.
"""
from __future__ import annotations

import random
from typing import Any

from lab.core.balancing import Pool, Server, make_algorithm
from lab.core.health import HealthSettings
from lab.core.l4 import Backend, L4Settings, shares
from lab.core.schema import from_config
from lab.services.healthcheck import HealthChecker, Probe, Target
from lab.services.kernel_planes import DsrPlane, IpvsPlane, NatPlane
from lab.services.runtime import Context, serve


async def main(ctx: Context) -> None:
    cfg = ctx.config
    settings = from_config(L4Settings, cfg)
    backends = [Backend(s["name"], s["address"], s["port"], s["weight"], s["backup"]) for s in cfg["servers"]]
    targets = [Target(b.name, b.address, b.port) for b in backends]
    health = cfg["health"]
    tasks = []
    if cfg["mode"] in ("nat", "dsr"):
        if settings.impl == "ipvs":
            plane: NatPlane = IpvsPlane(settings, cfg["address"], backends, ctx.log, cfg["mode"])
        else:
            plane = (NatPlane if cfg["mode"] == "nat" else DsrPlane)(settings, cfg["address"], backends, ctx.log)
        checker = HealthChecker(targets, from_config(HealthSettings, health), from_config(Probe, health), ctx.log,
                                plane.health_changed)
        await plane.apply("start")
        tasks.append(ctx.spawn(plane.keep(), "keep the table"))
        if cfg["mode"] == "nat" or settings.impl == "ipvs":  # conntrack (or IPVS) holds the flows; nftables DSR keeps none
            tasks.append(ctx.spawn(plane.watch_flows(), "watch flows"))
        ctx.commands["set_server"] = plane.set_server
        ctx.commands["stats"] = lambda req: {"mode": cfg["mode"], "slots": shares(plane.slots), "size": len(plane.slots),
                                             "up": {name: "UP" if up else "DOWN" for name, up in plane.up.items()}}
    else:
        from lab.services.tcp_relay import Relay

        servers = [Server(b.name, b.address, b.port, b.weight, b.backup) for b in backends]
        pool = Pool(servers, make_algorithm(settings.algorithm, servers, "source"), random.Random(cfg["seed"]))
        relay = Relay(pool, settings, ctx.log)
        checker = HealthChecker(targets, from_config(HealthSettings, health), from_config(Probe, health), ctx.log, relay.health_changed)
        await relay.start([cfg["address"]], settings.port)
        ctx.commands["stats"] = lambda req: relay.statistics()
        ctx.commands["set_server"] = relay.set_server
    tasks += [ctx.spawn(checker.loop(t, delay), f"check {t.name}") for t, delay in zip(checker.targets, checker.first_delays())]
    ctx.ready(port=settings.port, bind=[cfg["address"]], servers=[b.name for b in backends], algorithm=settings.algorithm,
              mode=cfg["mode"])
    try:
        await ctx.stopping.wait()
    finally:
        for task in tasks:
            task.cancel()
        if cfg["mode"] in ("nat", "dsr"):
            await plane.remove()  # a clean stop takes the table away; a crash leaves it working without health checks
        else:
            relay.close()


def plan(scenario: Any, addresses: Any, run_dir: Any) -> list[Any]:
    """One L4 balancer per ``l4`` node of the topology, in the mode the node was built for unless ``[l4] mode`` says.

    ``impl = "haproxy"`` and ``proxy_protocol`` are for the nodes in proxy mode, ``impl = "ipvs"`` for those in nat or dsr mode."""
    from lab.core.l4 import node_mode
    from lab.core.schema import as_config
    from lab.net.roles import ServiceSpec, base_config, server_entry

    layout, settings = scenario.layout, scenario.roles["l4"]
    servers = [server_entry(n, addresses[n], scenario.origins[n]) for n in layout.by_role("origin")]
    specs = []
    for node in layout.by_role("l4"):
        cfg = base_config(node, "l4", run_dir)
        mode = node_mode(settings, layout.modes.get(node))
        # impl applies where it can: HAProxy to the relays, IPVS to the kernel's nat and dsr nodes; halab's elsewhere
        impl = settings.impl if (settings.impl == "haproxy") == (mode == "proxy") else "halab"
        cfg.update(as_config(settings), address=addresses[node], bind=[addresses[node]], servers=servers, seed=scenario.seed,
                   mode=mode, impl=impl)
        if mode != "proxy":
            cfg["proxy_protocol"] = "none"  # a relay's setting: through NAT or DSR the origin sees the client itself
        if impl == "haproxy":  # HAProxy takes the relay's place
            from lab.net.render import haproxy_tcp_config

            conf = run_dir / "conf" / f"{node}-haproxy.cfg"
            cfg.update(impl="haproxy", conf_path=str(conf),
                       conf_text=haproxy_tcp_config(settings, servers, str(conf.with_suffix(".pid")), addresses[node]))
        specs.append(ServiceSpec(node, "l4", cfg))
    return specs


def port(scenario: Any, node: str) -> int:
    return int(scenario.roles["l4"].port)


if __name__ == "__main__":
    serve(main)
