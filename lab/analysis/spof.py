"""Single points of failure and predicted availability, from a topology's graph alone.

A *single point of failure* (SPOF) is one part whose failure, by itself,
stops the service. Redundancy removes SPOFs; this module finds the ones a
topology still has and predicts the availability its parts add up to, before
anything is built (no root, no Mininet network: only the graph).

The service, as one client sees it:

- the client reaches a balancer it can use, over working links and switches
  (hosts do not forward packets for others). A client that sends to a VIP can
  use any gateway that holds that VIP in its VRRP groups, because VRRP moves
  the VIP to a survivor; a client with no VIP uses any balancer;
- that balancer works and reaches at least one working origin the same way;
- in a topology without balancers, the client reaches the origin it targets.

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


@dataclass(frozen=True)
class Part:
    """A node or a link that can fail. ``name`` is the node's name or ``a-b`` for a link."""

    name: str
    kind: str  # HOST, SWITCH or LINK
    ends: tuple[str, str] | None = None  # a link's two nodes


class Service:
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
        self.clients = layout.by_role("client")
        self.balancers = layout.by_role("balancer")
        self.origins = layout.by_role("origin")
        self.switches = set(layout.by_role("switch"))

    def gateways_for(self, client: str) -> list[str]:
        """The balancers a client can be served by (any holder of its VIP; all if it has none)."""
        target = self.layout.targets.get(client)
        if target is None:
            return list(self.balancers)
        holders = [b for b in self.balancers if any(g.get("vip") == target for g in self.layout.vrrp.get(b, ()))]
        if holders:
            return holders
        return [b for b in self.balancers if self.layout.addresses.get(b) == target]

    def _reaches(self, a: str, b: str, failed: frozenset[str]) -> bool:
        """Can ``a`` reach ``b`` through working switches and links only?"""
        if a in failed or b in failed:
            return False
        keep = {n for n in self.switches if n not in failed} | {a, b}
        view = nx.subgraph_view(self.graph, filter_node=keep.__contains__,
                                filter_edge=lambda u, v, k: k not in failed)
        return nx.has_path(view, a, b)

    def served(self, client: str, failed: Iterable[str] = ()) -> bool:
        """Is ``client`` served while the parts in ``failed`` are down?"""
        down = frozenset(failed) - {client}  # the observer does not fail itself
        if not self.balancers:
            target = self.layout.targets.get(client)
            origins = [o for o in self.origins if target is None or self.layout.addresses.get(o) == target
                       or self.layout.bonds.get(o, {}).get("address", "").split("/")[0] == target]
            return any(self._reaches(client, o, down) for o in origins)
        return any(self._reaches(client, gw, down) and any(self._reaches(gw, o, down) for o in self.origins)
                   for gw in self.gateways_for(client))

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


def single_points_of_failure(service: Service) -> Spofs:
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


def predicted(service: Service, client: str, availability: Availability,
              fixed_up: frozenset[str] = frozenset(), fixed_down: frozenset[str] = frozenset()) -> float:
    """Exact probability that ``client`` is served, parts failing independently (see the module text)."""
    undecided = [p for p in service.relevant(client) if p not in fixed_up and p not in fixed_down]

    def factor(rest: list[str], down: frozenset[str]) -> float:
        if not service.served(client, down):
            return 0.0  # fails even if every part still undecided works
        if service.served(client, down | frozenset(rest)):
            return 1.0  # works even if every part still undecided fails
        first, tail = rest[0], rest[1:]
        p = availability(service.parts[first])
        return p * factor(tail, down) + (1 - p) * factor(tail, down | {first})

    return factor(undecided, frozenset(fixed_down))


def importance(service: Service, client: str, availability: Availability) -> list[tuple[str, float]]:
    """Birnbaum importance of every part for ``client``, highest first."""
    rows = []
    for name in service.relevant(client):
        works = predicted(service, client, availability, fixed_up=frozenset({name}))
        fails = predicted(service, client, availability, fixed_down=frozenset({name}))
        rows.append((name, works - fails))
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def report(name: str, service: Service, availability: Availability, described: str, top: int = 6) -> list[str]:
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
    for client in service.clients:
        results.setdefault(round(predicted(service, client, availability), 12), []).append(client)
    for a, clients in results.items():
        lines.append(f"  {', '.join(clients):<14} {format_percent(a):>10}  {format_nines(a)} nines, "
                     f"about {format_duration(downtime_per_year(a))} down a year")
    if service.clients:
        client = service.clients[0]
        lines += ["", f"Where redundancy pays first, for {client} (importance = A with the part perfect - A with it dead):"]
        for part, value in importance(service, client, availability)[:top]:
            lines.append(f"  {part:<12} {value:.6f}")
    return lines
