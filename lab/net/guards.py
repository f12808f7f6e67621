"""Defences the lab sets up in the nodes' own kernels before any service starts.

``[vrrp] accept_from = "peers"``: each gateway's kernel drops every VRRP
packet whose source is not a gateway of its own groups (an nftables rule in
the gateway's namespace, one table, named below). A forged advert from a
client (``hijack``) then never reaches either speaker, halab's or
keepalived's. At the end of the run each rule's counter says how many it
dropped, as a ``vrrp_filtered`` event, so the defence is measured, not
assumed. The table lives in the node's namespace and goes with it.
"""
from __future__ import annotations

from typing import Any

from lab.net.errors import LabError

VRRP_TABLE = "halab_vrrp_guard"


def vrrp_peers(layout: Any, node: str) -> list[str]:
    """The addresses whose adverts ``node`` accepts: every gateway sharing a group with it, itself included."""
    mine = {g["vrid"] for g in layout.vrrp.get(node, ())}
    return sorted({layout.addresses[n] for n, groups in layout.vrrp.items() if mine & {g["vrid"] for g in groups}})


def guarded(lab: Any) -> list[str]:
    """The gateways whose kernel filters VRRP by source: every speaker's node, when accept_from = "peers"."""
    if lab.scenario.vrrp.accept_from != "peers":
        return []
    return [node for node, groups in lab.scenario.layout.vrrp.items() if groups]


def guard_vrrp(lab: Any) -> None:
    for node in guarded(lab):
        allowed = ", ".join(vrrp_peers(lab.scenario.layout, node))
        t = VRRP_TABLE
        out = lab.net[node].cmd(f"nft add table inet {t} && "
                                f"nft add chain inet {t} input '{{ type filter hook input priority -5; }}' && "
                                f"nft add rule inet {t} input ip protocol 112 ip saddr != '{{ {allowed} }}' counter drop && echo OK")
        if not out.strip().endswith("OK"):
            raise LabError(f"[vrrp] accept_from = \"peers\" needs nftables in {node}'s namespace: {out.strip()[-200:]}")


def report_vrrp(lab: Any) -> None:
    """One ``vrrp_filtered`` event per guarded gateway: what its rule let in and how many adverts it dropped."""
    for node in guarded(lab):
        dropped = packets_dropped(lab.net[node].cmd(f"nft list chain inet {VRRP_TABLE} input"))
        lab.event("vrrp_filtered", gateway=node, allowed=vrrp_peers(lab.scenario.layout, node), dropped=dropped)


def packets_dropped(listing: str) -> int:
    """The packet count of the (only) counter in an ``nft list chain`` listing; 0 when there is none."""
    words = listing.split()
    for i, word in enumerate(words[:-1]):
        if word == "packets" and words[i + 1].isdigit():
            return int(words[i + 1])
    return 0
