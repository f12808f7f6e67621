"""bonding: a server dual-homed to two switches through one bonded interface.

srv has two NICs, srv-eth0 to s1 and srv-eth1 to s2, bonded into bond0
(10.0.0.10): one MAC, one IP, two cables. Either switch or cable can fail
and srv stays reachable through the other. Both server links are capped at
``bw`` Mbit/s (htb), so balance-rr's doubled bandwidth can be measured.

    c1 ─┐          ┌─ s1 ── srv-eth0 ─┐
    c2 ─┼── s3 ────┤                  ├─ srv  bond0 10.0.0.10
        │          └─ s2 ── srv-eth1 ─┘

Address plan: one /24. srv 10.0.0.10 (on the bond), clients 10.0.0.(100+N).
srv never forwards between its links, so the s3-s1-srv-s2-s3 circle is no
switching loop.
"""
from mininet.link import TCLink
from mininet.topo import Topo

from lab.core.schema import Field

PARAMS = {
    "clients": Field(int, default=2, minimum=1, maximum=20),
    "bw": Field(float, default=10.0, minimum=1, maximum=1000, help="Mbit/s of each server link"),
}


class Bonding(Topo):
    def build(self, clients: int = 2, bw: float = 10.0) -> None:
        s1, s2, s3 = self.addSwitch("s1"), self.addSwitch("s2"), self.addSwitch("s3")
        srv = self.addHost("srv", ip="10.0.0.10/24", role="origin",
                           bond={"members": ["srv-eth0", "srv-eth1"], "address": "10.0.0.10/24"})
        self.addLink(srv, s1, cls=TCLink, bw=bw)
        self.addLink(srv, s2, cls=TCLink, bw=bw)
        self.addLink(s1, s3)
        self.addLink(s2, s3)
        for n in range(1, clients + 1):
            self.addLink(self.addHost(f"c{n}", ip=f"10.0.0.{100 + n}/24", role="client", target="10.0.0.10"), s3)
