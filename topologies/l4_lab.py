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

With ``dsr = true`` nat1 balances by direct server return: it changes only
the destination MAC of each packet (nftables netdev ingress, ``fwd``) and
sends it on to an origin, which holds 10.4.0.2 on its loopback, accepts
the packet as its own and answers the client directly through the router
r1 (10.4.0.254 / 10.5.0.254), never through nat1.

The clients reach the back LAN only through these three (tcp1 and lb1 do
not forward packets; the clients have no route to 10.5.0.0/24). They send
their load to nat1 unless ``[load] target`` names tcp1 or lb1.
"""
from mininet.node import Node
from mininet.topo import Topo

from lab.core.schema import Field
from topologies.proxy_chain import Router

PARAMS = {
    "clients": Field(int, default=2, minimum=1, maximum=50, help="client hosts on the front LAN"),
    "origins": Field(int, default=3, minimum=1, maximum=50, help="origin servers on the back LAN"),
    "dsr": Field(bool, default=False, help="nat1 balances by direct server return instead of NAT: the origins hold "
                                           "10.4.0.2 on their loopback and answer the clients through the router r1"),
}
NAT = "10.4.0.2"  # where the clients aim by default


class DsrOrigin(Node):
    """An origin behind a DSR balancer: the service address on its loopback, never announced by ARP.

    arp_ignore=1 answers ARP only for addresses on the asking interface (not
    the loopback's); arp_announce=2 never uses the loopback's address as an ARP
    source: only the balancer answers for the service address (IPVS DR's rules).
    """

    def config(self, **params):  # type: ignore[no-untyped-def]
        result = super().config(**params)
        self.cmd(f"ip addr add {NAT}/32 dev lo")
        self.cmd("sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2")
        return result


class L4Lab(Topo):
    def build(self, clients: int = 2, origins: int = 3, dsr: bool = False) -> None:
        front, back = self.addSwitch("s1"), self.addSwitch("s2")
        nat = self.addHost("nat1", cls=Router, ip=f"{NAT}/24", role="l4", mode="dsr" if dsr else "nat")
        tcp = self.addHost("tcp1", ip="10.4.0.3/24", role="l4", mode="proxy")
        lb = self.addHost("lb1", ip="10.4.0.4/24", role="balancer")
        self.addLink(nat, front)
        self.addLink(nat, back, params1={"ip": "10.5.0.1/24"})
        for host, address in ((tcp, "10.5.0.3/24"), (lb, "10.5.0.4/24")):
            self.addLink(host, front)
            self.addLink(host, back, params1={"ip": address})
        if dsr:  # the way back that does not pass the balancer
            router = self.addHost("r1", cls=Router, ip="10.4.0.254/24", role="router")
            self.addLink(router, front)
            self.addLink(router, back, params1={"ip": "10.5.0.254/24"})
        for k in range(1, origins + 1):
            extra = {"cls": DsrOrigin, "loopback": [NAT]} if dsr else {}
            self.addLink(self.addHost(f"o{k}", ip=f"10.5.0.{10 + k}/24", role="origin",
                                      defaultRoute=f"via 10.5.0.{254 if dsr else 1}", **extra), back)
        for n in range(1, clients + 1):
            self.addLink(self.addHost(f"c{n}", ip=f"10.4.0.{100 + n}/24", role="client", target=NAT), front)
