"""Single points of failure and predicted availability, from a topology's graph alone.

A *single point of failure* (SPOF) is one part whose failure, by itself,
stops the service. Redundancy removes SPOFs; this module finds the ones a
topology still has and predicts the availability its parts add up to, before
anything is built (no root, no Mininet network: only the graph).

The service, as one client sees it:

- the client reaches a balancer it can use, over working links, switches and
  routers (other hosts do not forward packets for others). A client that sends to a VIP can
  use any gateway that holds that VIP in its VRRP groups, because VRRP moves
  the VIP to a survivor; a client with no VIP uses any balancer;
- that balancer works and reaches at least one working origin the same way
  (behind a direct-server-return balancer, that origin must also reach the
  client by its own way back, through routers: the answers bypass the balancer);
- in a topology without balancers, the client reaches the origin it targets;
- a client configured with forward proxies (``proxy_chain``) is served when
  one of them (in its list, with ``DIRECT`` for the way around them) works,
  is reachable, and itself reaches a working gateway: the client fails over
  from one proxy to the next as a browser with a PAC file does.

Failover is taken as perfect here: VRRP moves the VIP, health checks drop a
dead origin. A real run adds the detection time on top, which is what the
report of ``halab run`` measures. The client's own machine is the observer,
not a part of the service, so it is never counted; its access link is, and a
part that cuts off only some clients is reported apart from one that stops
everyone.

Predicted availability is exact, by factoring (pivotal decomposition): for a
part ``x`` with availability ``p``,

    A = p * A(with x always working) + (1 - p) * A(with x always failed)

recursing until the answer no longer depends on the parts left (the service
works even if they all fail, or fails even if they all work). Parts are
independent. For pure series and parallel structures this is exactly the
product formulas of ``lab.core.availability``; for meshes it is what those
formulas cannot express.

The *importance* of a part (Birnbaum) is A(it always works) - A(it always
fails): how much the service depends on it. The parts with the highest
importance are where redundancy pays first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import networkx as nx

from lab.core.scenario import Layout

HOST, SWITCH, LINK = "host", "switch", "link"
# Defaults for the prediction, stated wherever they are used: a server or a
# balancer host down about 8.8 h a year, a switch or a cable about 53 min.
DEFAULT_AVAILABILITY = {HOST: 0.999, SWITCH: 0.9999, LINK: 0.9999}
MAX_IMPORTANCE_PARTS = 40  # beyond this the ranking takes minutes; the lab's topologies have 10-30


@dataclass(frozen=True)
class Part:
    """A node or a link that can fail. ``name`` is the node's name or ``a-b`` for a link."""

    name: str
    kind: str  # HOST, SWITCH or LINK
    ends: tuple[str, str] | None = None  # a link's two nodes


class ServiceGraph:
    """The topology as a graph, and the rule for when a client is served."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.graph = nx.MultiGraph()
        self.parts: dict[str, Part] = {}
        for node, role in layout.nodes.items():
            self.graph.add_node(node, role=role)
            self.parts[node] = Part(node, SWITCH if role == "switch" else HOST)
        for a, b in layout.links:
            name = f"{a}-{b}"
            n = 2
            while name in self.parts:  # two cables between the same pair: name them apart
                name = f"{a}-{b}#{n}"
                n += 1
            self.graph.add_edge(a, b, key=name)
            self.parts[name] = Part(name, LINK, (a, b))
        # node -> [(neighbour, link name)], walked by ``reach`` many times per prediction
        self.adjacent: dict[str, list[tuple[str, str]]] = {n: [] for n in layout.nodes}
        for a, b, key in self.graph.edges(keys=True):
            self.adjacent[a].append((b, key))
            self.adjacent[b].append((a, key))
        self.clients = layout.by_role("client")
        # host -> its cables (clients excluded: the observer never fails), read by ``dead`` at every step
        self.host_links = {n: [k for _, k in self.adjacent[n]] for n, part in self.parts.items()
                           if part.kind == HOST and n not in self.clients}
        self.balancers = layout.by_role("balancer") + layout.by_role("l4")  # L7 or L4: each stands between clients and origins
        self.origins = layout.by_role("origin")
        self.switches = set(layout.by_role("switch"))
        self.forwarders = self.switches | set(layout.by_role("router"))  # what passes other hosts' packets on

    def gateways_for(self, client: str) -> list[str]:
        """The balancers a client can be served by (any holder of its VIP; all if it has none)."""
        target = self.layout.targets.get(client)
        if target is None:
            return list(self.balancers)
        holders = [b for b in self.balancers if any(g.get("vip") == target for g in self.layout.vrrp.get(b, ()))]
        if holders:
            return holders
        return [b for b in self.balancers if self.layout.addresses.get(b) == target]

    def reach(self, source: str, failed: frozenset[str]) -> set[str]:
        """The hosts ``source`` can reach over working links, switches and routers (hosts do not forward)."""
        hosts: set[str] = set()
        if source in failed:
            return hosts
        seen = {source}
        stack = [source]
        while stack:
            for neighbour, link in self.adjacent[stack.pop()]:
                if link in failed or neighbour in failed or neighbour in seen:
                    continue
                seen.add(neighbour)
                if neighbour in self.forwarders:
                    stack.append(neighbour)
                else:
                    hosts.add(neighbour)
        return hosts

    def served(self, client: str, failed: Iterable[str] = ()) -> bool:
        """Is ``client`` served while the parts in ``failed`` are down?"""
        down = frozenset(failed) - {client}  # the observer does not fail itself
        reached = self.reach(client, down)
        if not self.balancers:
            target = self.layout.targets.get(client)
            return any(o in reached for o in self.origins if target is None or self.layout.addresses.get(o) == target
                       or self.layout.bonds.get(o, {}).get("address", "").split("/")[0] == target)
        proxies = self.layout.proxies.get(client)
        if proxies:
            return any(self._through_gateway(client, reached, down) if p == "DIRECT"
                       else any(node in reached and self._through_gateway(client, self.reach(node, down), down)
                                for node in self.holders(p)) for p in proxies)
        return self._through_gateway(client, reached, down)

    def holders(self, proxy: str) -> list[str]:
        """The nodes that can be the proxy a client names: the node itself, or any holder of that VIP (VRRP moves it)."""
        if proxy in self.layout.nodes:
            return [proxy]
        return [n for n, groups in self.layout.vrrp.items() if any(g.get("vip") == proxy for g in groups)]

    def _through_gateway(self, client: str, reached: set[str], down: frozenset[str]) -> bool:
        """One of the client's gateways is among the hosts ``reached`` and itself reaches a working origin
        (behind a DSR balancer, one that can also answer the client by its own way back: the balancer is not on it)."""
        return any(gw in reached and any(o in self.reach(gw, down) and (self.layout.modes.get(gw) != "dsr" or client in self.reach(o, down))
                                         for o in self.origins) for gw in self.gateways_for(client))

    def shape(self, client: str) -> tuple[object, ...]:
        """What a client's service depends on besides itself: its switches and its gateways."""
        return (tuple(sorted(n for n, _ in self.adjacent[client])), tuple(self.gateways_for(client)),
                self.layout.targets.get(client), self.layout.proxies.get(client))

    def dead(self, down: frozenset[str]) -> frozenset[str]:
        """``down`` plus what it implies: a host whose every cable is down is as good as down,
        and a down host's cables carry nothing. Equal results mean equal service, so the
        prediction can reuse what it computed for one of them."""
        out = set(down)
        for name, links in self.host_links.items():
            if name in out or (links and all(k in out for k in links)):
                out.add(name)
                out.update(links)
        return frozenset(out)

    def relevant(self, client: str) -> list[str]:
        """The parts that can matter to ``client``: not itself, not other clients or their cables."""
        others = set(self.clients) - {client}
        out = []
        for name, part in self.parts.items():
            if name == client or name in others:
                continue
            if part.kind == LINK and part.ends is not None and (set(part.ends) & others):
                continue
            out.append(name)
        return out


@dataclass(frozen=True)
class Spofs:
    everyone: tuple[str, ...]  # each of these alone stops every client
    some: Mapping[str, tuple[str, ...]]  # part -> the clients it alone cuts off (not all of them)
    redundant: tuple[str, ...]  # no single failure of these stops anyone


def single_points_of_failure(service: ServiceGraph) -> Spofs:
    everyone, some, redundant = [], {}, []
    for name in service.parts:
        if name in service.clients:
            continue
        cut = tuple(c for c in service.clients if not service.served(c, {name}))
        if service.clients and len(cut) == len(service.clients):
            everyone.append(name)
        elif cut:
            some[name] = cut
        else:
            redundant.append(name)
    return Spofs(tuple(everyone), some, tuple(redundant))


Availability = Callable[[Part], float]


def availability_of(defaults: Mapping[str, float] = DEFAULT_AVAILABILITY,
                    overrides: Mapping[str, float] | None = None) -> Availability:
    """Each part's availability: its override by name, else the default for its kind."""
    for key, value in {**defaults, **(overrides or {})}.items():
        if not 0 <= value <= 1:
            raise ValueError(f"availability of {key} must be between 0 and 1 (got {value})")
    return lambda part: (overrides or {}).get(part.name, defaults[part.kind])


def predicted(service: ServiceGraph, client: str, availability: Availability,
              fixed_up: frozenset[str] = frozenset(), fixed_down: frozenset[str] = frozenset()) -> float:
    """Exact probability that ``client`` is served, parts failing independently (see the module text)."""
    undecided = _pivot_order(service, client, [p for p in service.relevant(client) if p not in fixed_up and p not in fixed_down])
    memo: dict[tuple[int, frozenset[str]], float] = {}

    def factor(i: int, down: frozenset[str]) -> float:
        key = (i, down)
        if key in memo:
            return memo[key]
        rest = undecided[i:]
        if not service.served(client, down):
            value = 0.0  # fails even if every part still undecided works
        elif service.served(client, down | frozenset(rest)):
            value = 1.0  # works even if every part still undecided fails
        else:
            p = availability(service.parts[rest[0]])
            value = p * factor(i + 1, down) + (1 - p) * factor(i + 1, service.dead(down | {rest[0]}))
        memo[key] = value
        return value

    return factor(0, service.dead(frozenset(fixed_down)))


def _pivot_order(service: ServiceGraph, client: str, parts: list[str]) -> list[str]:
    """Single points of failure first (their failed branch ends at once), then each host followed by its links.

    With that order and ``ServiceGraph.dead`` folding equivalent states together,
    a pool of N redundant origins costs N steps instead of 2^N.
    """
    spofs = [p for p in parts if not service.served(client, {p})]
    ordered = list(spofs)
    for name in parts:
        if name in ordered or service.parts[name].kind == LINK:
            continue
        ordered.append(name)
        ordered += [link for link in parts if link not in ordered and (service.parts[link].ends or ()) and name in service.parts[link].ends]
    return ordered + [p for p in parts if p not in ordered]


def importance(service: ServiceGraph, client: str, availability: Availability) -> list[tuple[str, float]]:
    """Birnbaum importance of every part for ``client``, highest first."""
    rows = []
    for name in service.relevant(client):
        works = predicted(service, client, availability, fixed_up=frozenset({name}))
        fails = predicted(service, client, availability, fixed_down=frozenset({name}))
        rows.append((name, works - fails))
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def report(name: str, service: ServiceGraph, availability: Availability, described: str, top: int = 6) -> list[str]:
    """The text ``halab spof`` prints: SPOFs, then predicted availability and importance per client."""
    from lab.core.availability import downtime_per_year, format_duration, format_nines, format_percent

    spofs = single_points_of_failure(service)
    lines = [f"{name}: {len(service.layout.nodes)} nodes, {len(service.layout.links)} links",
             "", "Single points of failure (one failure stops every client):",
             "  " + (", ".join(spofs.everyone) if spofs.everyone else "none: every part has a stand-in")]
    if spofs.some:
        lines += ["Cut off only some clients (a client's own cable or switch):"]
        lines += [f"  {part:<12} -> {', '.join(clients)}" for part, clients in spofs.some.items()]
    if spofs.redundant:
        lines += ["Redundant (no single failure of one of these stops anyone):", "  " + ", ".join(spofs.redundant)]
    lines += ["", f"Predicted availability, parts failing independently ({described}):"]
    results: dict[float, list[str]] = {}
    seen: dict[tuple[object, ...], float] = {}
    for client in service.clients:
        # Clients on the same switch, with the same VIP and equally good cables, see the same service.
        shape = (service.shape(client), tuple(sorted(availability(service.parts[k]) for _, k in service.adjacent[client])))
        if shape not in seen:
            seen[shape] = predicted(service, client, availability)
        results.setdefault(round(seen[shape], 12), []).append(client)
    for a, clients in results.items():
        lines.append(f"  {', '.join(clients):<14} {format_percent(a):>10}  {format_nines(a)} nines, "
                     f"about {format_duration(downtime_per_year(a))} down a year")
    if service.clients:
        client = service.clients[0]
        parts = len(service.relevant(client))
        if parts > MAX_IMPORTANCE_PARTS:
            lines += ["", f"(importance not computed: {parts} parts, more than {MAX_IMPORTANCE_PARTS}; it takes two exact"
                          " predictions per part. The single points of failure above are where redundancy pays first.)"]
        else:
            lines += ["", f"Where redundancy pays first, for {client} (importance = A with the part perfect - A with it dead):"]
            for part, value in importance(service, client, availability)[:top]:
                lines.append(f"  {part:<12} {value:.6f}")
    return lines
