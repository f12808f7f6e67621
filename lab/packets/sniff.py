"""Live or offline annotated trace: ``python -m lab.packets.sniff``.

``halab sniff NODE`` runs this inside the node's network namespace (via
nsenter), so it sees exactly what that host sees. ``--read FILE`` annotates
a saved pcap (for example one a run recorded in ``runs/.../pcap/``).
"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="halab sniff")
    parser.add_argument("--iface", help="interface to listen on (default: all of this namespace's)")
    parser.add_argument("--filter", default="", help="BPF filter, e.g. 'tcp port 80'")
    parser.add_argument("--names", default="{}", help="JSON map of IP address -> node name")
    parser.add_argument("--roles", default="{}", help="JSON map of node name -> role (labels each message's leg and direction)")
    parser.add_argument("--read", help="annotate a pcap file instead of listening")
    parser.add_argument("--count", type=int, default=0, help="stop after this many packets (0: until Ctrl-C)")
    args = parser.parse_args(argv)
    from scapy.all import rdpcap, sniff

    from lab.packets.annotate import annotate

    names, roles = json.loads(args.names), json.loads(args.roles)
    if args.read:
        packets = rdpcap(args.read)
        t0 = float(packets[0].time) if packets else 0.0
        for i, pkt in enumerate(packets):
            if args.count and i >= args.count:
                break
            print(annotate(pkt, names, t0, roles))
        return 0
    start = {}

    def show(pkt: object) -> None:
        t0 = start.setdefault("t0", float(pkt.time))  # type: ignore[attr-defined]
        print(annotate(pkt, names, t0, roles), flush=True)

    try:
        sniff(iface=args.iface, filter=args.filter or None, prn=show, store=False, count=args.count)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
