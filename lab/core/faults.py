"""The fault vocabulary: every action a scenario, the CLI or chaos can take.

One table, read by everything that names a fault: scenario validation and
its timeline check, the fault injector (``lab.net.faults``), the CLI verbs
(``lab.labcli``), chaos, the metrics and the README's table. Adding an
action means one entry here and one method on ``Faults`` with the same name.

Each fault breaks something and puts it in a *broken set* (a link in
``down``, a node in ``crashed``...); its repair takes it out again. The
timeline check replays a scenario on those sets before anything is built,
and ``Faults.restore`` walks the same sets to undo what is still in force.
"""
from __future__ import annotations

from dataclasses import dataclass

LINK, NODE, PAIR, NONE, HOST = "link", "node", "pair", "none", "host"  # what an action's target names (HOST: any host, an attacker)


@dataclass(frozen=True)
class Action:
    name: str
    target: str  # LINK ('a-b', or a node with one link), NODE (one running services), HOST (any host), PAIR ('a/b') or NONE
    broken: str | None  # the broken set it adds to (a fault) or takes from (a repair)
    reverts: str | None  # for a repair: the fault it undoes
    verb: str  # the CLI command
    help: str
    stops_services: bool = False  # the node's processes die: what restarts them starts with a fresh state
    state: str = ""  # a fault: how a target it broke is described ("crashed", "powered off" ...)
    mends: str = ""  # a repair: what it does, in a sentence ("nothing to power on")
    needs: str = ""  # what the topology must have for it to mean anything ("vrrp": a VRRP group to attack)
    ordered: bool = False  # a pair 'a/b' whose order matters: a acts on b (an attacker and its victim)

    @property
    def is_repair(self) -> bool:
        return self.reverts is not None

    def complaint(self, target: str, at: float) -> str:
        """Why this action cannot happen now (the target is, or is not yet, broken)."""
        if self.is_repair:
            fault = ACTIONS[self.reverts]  # type: ignore[index]
            return f"{_subject(target, self.target)} {_be(self.target)} not {fault.state} at {at} s (nothing to {self.mends})"
        return f"{_subject(target, self.target)} {_be(self.target)} already {self.state} at {at} s"


def _subject(target: str, kind: str) -> str:
    return f"link {target}" if kind == LINK else target


def _be(kind: str) -> str:
    return "are" if kind == PAIR else "is"


_DECLARED = (
    Action("link_down", LINK, "down", None, "fail", "take the link down: the cable is pulled (carrier lost at both ends)",
           state="down"),
    Action("link_up", LINK, "down", "link_down", "heal", "bring a link back up: the cable is plugged back in",
           mends="heal"),
    Action("pause", NODE, "paused", None, "pause", "SIGSTOP its services (the kernel still answers ping and TCP handshakes: "
           "the gray failure)", state="paused"),
    Action("resume", NODE, "paused", "pause", "resume", "SIGCONT a paused node's services", mends="resume"),
    Action("crash", NODE, "crashed", None, "crash", "SIGKILL every halab service on the node", stops_services=True, state="crashed"),
    Action("restart", NODE, "crashed", "crash", "restart", "start a crashed node's services again", mends="restart"),
    Action("bad_deploy", NODE, "erroring", None, "baddeploy", "the origin answers 500 to every request, but its /health still "
           "says 200 (a bad release): active checks see nothing, passive checks do", state="answering 500s"),
    Action("rollback", NODE, "erroring", "bad_deploy", "rollback", "the origin answers as before", mends="roll back"),
    Action("poweroff", NODE, "off", None, "poweroff", "the whole machine dies: every interface down, services killed",
           stops_services=True, state="powered off"),
    Action("poweron", NODE, "off", "poweroff", "poweron", "boot a powered-off node again (interfaces up, no VIP held, services started)",
           mends="power on"),
    Action("partition", PAIR, "cut", None, "partition", "A and B drop each other's packets; both still reach everyone else",
           state="partitioned"),
    Action("unpartition", PAIR, "cut", "partition", "unpartition", "let A and B talk again", mends="heal"),
    Action("hijack", HOST, "hijacking", None, "hijack", "the host sends forged VRRP adverts with priority 255 for every VIP "
           "(Scapy; VRRPv3 has no authentication): the gateways yield the VIP, and nobody holds it", state="hijacking", needs="vrrp"),
    Action("stop_hijack", HOST, "hijacking", "hijack", "unhijack", "stop the forged adverts: the gateways elect a master again",
           mends="stop"),
    Action("arp_spoof", HOST, "arp_spoofing", None, "arpspoof", "the host sends forged gratuitous ARPs (Scapy, two a second) "
           "saying every VIP is at its own MAC: the clients' requests go to it, and it drops them", state="spoofing ARP",
           needs="vrrp"),
    Action("stop_arp_spoof", HOST, "arp_spoofing", "arp_spoof", "unarpspoof", "stop the forged ARPs: the clients' entries "
           "stay wrong until their kernel probes them again or the MASTER repeats its own GARP ([vrrp] garp_refresh)",
           mends="stop"),
    Action("syn_flood", PAIR, "flooding", None, "flood", "A floods B's service port with forged SYNs (Scapy, at most 3000 a "
           "second, from addresses nobody holds): B's SYN queue fills unless its kernel answers with SYN cookies", state="flooding",
           ordered=True),
    Action("stop_flood", PAIR, "flooding", "syn_flood", "unflood", "stop the SYN flood", mends="stop", ordered=True),
    Action("http_flood", PAIR, "http_flooding", None, "httpflood", "A sends B's service valid GETs on 100 kept-alive connections, "
           "2000 a second: the servers' capacity goes to A, unless B limits each client's rate ([balancer] rate_limit)",
           state="flooding with requests", ordered=True),
    Action("stop_http_flood", PAIR, "http_flooding", "http_flood", "unhttpflood", "stop the HTTP flood", mends="stop", ordered=True),
    Action("slowloris", PAIR, "slowing", None, "slowloris", "A holds 200 connections to B's service port with request heads it "
           "never finishes (a header line every 2 s): a server with a worker per connection runs out of workers",
           state="holding slow connections", ordered=True),
    Action("stop_slowloris", PAIR, "slowing", "slowloris", "unslowloris", "close the slow connections", mends="stop", ordered=True),
    Action("restore", NONE, None, None, "restore", "undo every fault in force"),
)
ACTIONS: dict[str, Action] = {a.name: a for a in _DECLARED}
FAULTS = tuple(a.name for a in _DECLARED if a.broken and not a.is_repair)
REPAIRS = {a.name: a.reverts for a in _DECLARED if a.is_repair}  # repair -> the fault it undoes
REPAIR_OF = {fault: repair for repair, fault in REPAIRS.items()}  # fault -> its repair
BROKEN_SETS = tuple(dict.fromkeys(a.broken for a in _DECLARED if a.broken))  # in the order restore undoes them
STOPS_SERVICES = tuple(a.name for a in _DECLARED if a.stops_services)
# what chaos may do: kind -> the fault it applies (then its repair); a flap takes a link down and up three times
CHAOS_KINDS = {"link": "link_down", "flap": "link_down", "power": "poweroff", "crash": "crash", "pause": "pause",
               "partition": "partition"}


def usage(action: Action) -> str:
    """The CLI's one-line help: 'crash NODE: SIGKILL ...'."""
    arg = {LINK: " LINK", NODE: " NODE", HOST: " HOST", PAIR: " A/B", NONE: ""}[action.target]
    return f"{action.verb}{arg}: {action.help}."


def markdown_table() -> str:
    """The table the README shows: generated, so it cannot drift from the code."""
    rows = ["| action | target | what it does | undone by | `halab cli` |", "|---|---|---|---|---|"]
    for a in _DECLARED:
        target = {LINK: "`a-b` or a node with one link", NODE: "a node", HOST: "any host (the attacker)", PAIR: "`a/b`",
                  NONE: "none"}[a.target]
        rows.append(f"| `{a.name}` | {target} | {a.help} | {f'`{REPAIR_OF[a.name]}`' if a.name in REPAIR_OF else ''} | `{usage(a).split(':')[0]}` |")
    return "\n".join(rows)
