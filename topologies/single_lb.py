"""single_lb: clients -> one L7 balancer -> K redundant origins, on one switch.

The smallest network where balancing and failover can be watched: the
origins are redundant, the balancer and the switch are not (they are this
design's single points of failure; `halab spof single_lb` would say so).

    c1 ─┐                 ┌─ o1  10.0.0.11
    c2 ─┼──── s1 ─────────┼─ o2  10.0.0.12
    ..  │      │          └─ o3  10.0.0.13
        │     lb1 10.0.0.2
    clients 10.0.0.101, .102, ...

Address plan: one /24, 10.0.0.0/24. Balancer lb1 = 10.0.0.2 (port 80),
origins oK = 10.0.0.(10+K), clients cN = 10.0.0.(100+N). Every host hangs
off the one switch s1, so the only path from a client to an origin is
through lb1's service (the clients are only given lb1's address).

The /24 holds 89 origins (.11-.99). A bigger lab (``halab bench scale``
measures up to 200) puts origins 90 and up in 10.0.1.0 (o90 = 10.0.1.1)
and gives every host a /16, so all of them still share one subnet.
"""
from mininet.topo import Topo

from lab.core.schema import Field

IN_ONE_24 = 89  # origins 10.0.0.11-.99, below the clients' .101-.150
MAX_ORIGINS = 200


def origin_address(k: int, origins: int) -> str:
    """oK's address with its prefix: 10.0.0.(10+K)/24, or in a lab of more than 89 origins a /16 (10.0.1.x from o90)."""
    prefix = 24 if origins <= IN_ONE_24 else 16
    host = f"10.0.0.{10 + k}" if k <= IN_ONE_24 else f"10.0.1.{k - IN_ONE_24}"
    return f"{host}/{prefix}"


PARAMS = {
    "clients": Field(int, default=2, minimum=1, maximum=50, help="client hosts that send load"),
    "origins": Field(int, default=3, minimum=1, maximum=MAX_ORIGINS, help="redundant origin servers"),
}


class SingleLB(Topo):
    """Clients, one L7 balancer and K origins on one switch."""

    def build(self, clients: int = 2, origins: int = 3) -> None:
        prefix = origin_address(1, origins).split("/")[1]
        switch = self.addSwitch("s1")
        lb = self.addHost("lb1", ip=f"10.0.0.2/{prefix}", role="balancer")
        self.addLink(lb, switch)
        for k in range(1, origins + 1):
            self.addLink(self.addHost(f"o{k}", ip=origin_address(k, origins), role="origin"), switch)
        for n in range(1, clients + 1):
            self.addLink(self.addHost(f"c{n}", ip=f"10.0.0.{100 + n}/{prefix}", role="client"), switch)
