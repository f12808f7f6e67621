"""l4_lab: the same origins behind three balancers side by side: kernel NAT (L4), a TCP relay (L4) and an HTTP gateway (L7).

The course's two kinds of load balancer on one network, so a student can
send the same traffic through each and compare what the client, the
origins and the wire see.

      front LAN 10.4.0.0/24                        back LAN 10.5.0.0/24
    c1 .101 ─┐                                         ┌─ o1 .11
    c2 .102 ─┼─ s1 ─┬─ nat1 .2  (L4, kernel NAT)  .1 ─┬─ s2 ─┼─ o2 .12
     ..      │      ├─ tcp1 .3  (L4, TCP relay)   .3 ─┤      └─ o3 .13
             │      └─ lb1  .4  (L7, HTTP)        .4 ─┘
                                                   origins: default route via nat1 (10.5.0.1)

Address plan: front LAN 10.4.0.0/24 on s1 (clients 10.4.0.(100+N); nat1
.2, tcp1 .3, lb1 .4, each listening on port 80); back LAN 10.5.0.0/24 on
s2 (nat1 .1, tcp1 .3, lb1 .4; origins 10.5.0.(10+K)).

- **nat1** forwards between the LANs and DNATs each new connection to an
  origin (nftables, ``[l4]``). The origins answer the client's own
  address, so their default route must lead back through nat1, where
  conntrack turns the answer's source back into nat1's address. This is
  why NAT balancing constrains the network: an origin that answered by
  another path would break the connection.
- **tcp1** relays TCP (``[l4]``, mode proxy): it opens its own connection
  to the origin from 10.5.0.3, so answers come back to it on the back LAN.
- **lb1** is halab's L7 balancer (``[balancer]``), a reverse proxy for HTTP.

The clients reach the back LAN only through these three (tcp1 and lb1 do
not forward packets; the clients have no route to 10.5.0.0/24). They send
their load to nat1 unless ``[load] target`` names tcp1 or lb1.
"""
from mininet.topo import Topo

from lab.core.schema import Field
from topologies.proxy_chain import Router

PARAMS = {
    "clients": Field(int, default=2, minimum=1, maximum=50, help="client hosts on the front LAN"),
    "origins": Field(int, default=3, minimum=1, maximum=50, help="origin servers on the back LAN"),
}
NAT = "10.4.0.2"  # where the clients aim by default


class L4Lab(Topo):
    def build(self, clients: int = 2, origins: int = 3) -> None:
        front, back = self.addSwitch("s1"), self.addSwitch("s2")
        nat = self.addHost("nat1", cls=Router, ip=f"{NAT}/24", role="l4", mode="nat")
        tcp = self.addHost("tcp1", ip="10.4.0.3/24", role="l4", mode="proxy")
        lb = self.addHost("lb1", ip="10.4.0.4/24", role="balancer")
        self.addLink(nat, front)
        self.addLink(nat, back, params1={"ip": "10.5.0.1/24"})
        for host, address in ((tcp, "10.5.0.3/24"), (lb, "10.5.0.4/24")):
            self.addLink(host, front)
            self.addLink(host, back, params1={"ip": address})
        for k in range(1, origins + 1):
            self.addLink(self.addHost(f"o{k}", ip=f"10.5.0.{10 + k}/24", role="origin", defaultRoute="via 10.5.0.1"), back)
        for n in range(1, clients + 1):
            self.addLink(self.addHost(f"c{n}", ip=f"10.4.0.{100 + n}/24", role="client", target=NAT), front)
