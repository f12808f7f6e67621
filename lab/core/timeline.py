"""A scenario's ``[[faults]]``: each target resolved against the layout, and the timeline checked before anything is built.

A link is named 'a-b' (either order) or by a node with one link; a pair 'a/b'
(in name order, or as written when the order means attacker/victim). The
timeline is replayed on sets of broken things, so healing a link that is not
cut or resuming a node that is not paused is refused with the fault's index.
Chaos timelines (``lab.chaos``) go through the same checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.core.faults import ACTIONS, BROKEN_SETS, HOST, LINK, NODE, NONE, PAIR
from lab.core.roles import SERVICE_ROLES
from lab.core.schema import ConfigError, Field, check_table, suggest

if TYPE_CHECKING:  # the layout is scenario.py's; it imports this module
    from lab.core.scenario import Layout

FAULT = {
    "at": Field(float, required=True, minimum=0, help="seconds after the load starts"),
    "action": Field(str, required=True, choices=tuple(ACTIONS)),
    "target": Field(str, default=None, help="a node (crash, pause...) or a link 'a-b' / a node with one link"),
    "note": Field(str, default="", help="shown in the live view and the report"),
}

@dataclass(frozen=True)
class Fault:
    at: float
    action: str
    target: str | None
    note: str = ""
    index: int = 0  # position in the file, for messages

    @property
    def link(self) -> tuple[str, str] | None:
        if ACTIONS[self.action].target == LINK and self.target:
            a, _, b = self.target.partition("-")
            return (a, b)
        return None


def resolve_link(target: str, layout: Layout) -> tuple[str, str] | str:
    """A link from 'a-b', 'b-a' or a node that has exactly one link; or an error sentence."""
    if target in layout.nodes:
        links = layout.links_of(target)
        if len(links) == 1:
            return links[0]
        pretty = ", ".join(f"{a}-{b}" for a, b in links)
        return f"node {target!r} has {len(links)} links ({pretty}); name one as 'a-b'"
    a, sep, b = target.partition("-")
    if sep:
        for link in layout.links:
            if link in ((a, b), (b, a)):
                return link
        return f"no link between {a!r} and {b!r}"
    return f"no node or link named {target!r}{suggest(target, list(layout.nodes))}"


def resolve_pair(target: str, layout: Layout, ordered: bool = False) -> tuple[str, str] | str:
    """'a/b' -> (a, b) in name order (or as written, when the order means something: attacker/victim), or an error sentence."""
    a, sep, b = target.partition("/")
    if not sep:
        return f"{target!r} is not a pair of nodes; write 'a/b', e.g. 'gw1/gw2'"
    for name in (a, b):
        if name not in layout.nodes or layout.nodes[name] == "switch":
            return f"no host named {name!r}{suggest(name, [n for n, r in layout.nodes.items() if r != 'switch'])}"
    if a == b:
        return f"a node cannot be cut off from itself ({target!r})"
    first, second = (a, b) if ordered else sorted((a, b))
    return (first, second)


def parse_faults(items: list[dict[str, Any]], duration: float, layout: Layout, source: str) -> tuple[Fault, ...]:
    """``[[faults]]`` entries checked and in time order (a scenario file's, or a timeline made elsewhere: chaos)."""
    faults = []
    for i, item in enumerate(items):
        where = f"faults[{i}]"
        values = check_table(item, FAULT, source, where)
        action, target = values["action"], values["target"]
        kind = ACTIONS[action].target
        if values["at"] > duration:
            raise ConfigError(source, f"{where}.at", f"{values['at']} s is after the run ends (duration = {duration} s)")
        if kind == NONE:
            if target is not None:
                raise ConfigError(source, f"{where}.target", f"'{action}' undoes every fault and takes no target")
        elif target is None:
            raise ConfigError(source, f"{where}.target", f"action {action!r} needs a target")
        elif kind == PAIR:
            pair = resolve_pair(target, layout, ACTIONS[action].ordered)
            if isinstance(pair, str):
                raise ConfigError(source, f"{where}.target", pair)
            target = f"{pair[0]}/{pair[1]}"
        elif kind == LINK:
            link = resolve_link(target, layout)
            if isinstance(link, str):
                raise ConfigError(source, f"{where}.target", link)
            target = f"{link[0]}-{link[1]}"
        else:
            if target not in layout.nodes:
                raise ConfigError(source, f"{where}.target", f"no node named {target!r}{suggest(target, list(layout.nodes))}")
            if kind == HOST and layout.nodes[target] == "switch":
                raise ConfigError(source, f"{where}.target", f"{target!r} is a switch; '{action}' needs a host to send from")
            if kind == NODE and layout.nodes[target] not in SERVICE_ROLES:
                raise ConfigError(source, f"{where}.target", f"{target!r} is a {layout.nodes[target]} and runs no service to {action}")
        if ACTIONS[action].needs == "vrrp" and not layout.vrrp:
            raise ConfigError(source, f"{where}.action", f"'{action}' attacks VRRP, and this topology has no VRRP group "
                              "(active_standby, active_active and proxy_chain with proxy_vip have)")
        faults.append(Fault(values["at"], action, target, values["note"], i))
    ordered = tuple(sorted(faults, key=lambda f: (f.at, f.index)))
    _check_timeline(ordered, source)
    return ordered


def _check_timeline(faults: tuple[Fault, ...], source: str) -> None:
    """Replay the timeline on sets of broken things; reject moves that cannot happen."""
    broken: dict[str, set[str]] = {kind: set() for kind in BROKEN_SETS}
    for f in faults:
        action = ACTIONS[f.action]
        if action.broken is None:  # restore
            for items in broken.values():
                items.clear()
            continue
        kind, must_be_broken = action.broken, action.is_repair
        target = f.target or ""
        if (target in broken[kind]) != must_be_broken:
            raise ConfigError(source, f"faults[{f.index}]", action.complaint(target, f.at))
        gone = broken["off"] if f.action == "crash" else broken["crashed"] | broken["off"]
        if f.action in ("pause", "resume", "crash") and target in gone:
            raise ConfigError(source, f"faults[{f.index}]", f"{target} is crashed or powered off at {f.at} s; bring it back before you {f.action} it")
        if must_be_broken:
            broken[kind].discard(target)
        else:
            broken[kind].add(target)
