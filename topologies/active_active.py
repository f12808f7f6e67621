"""active_active: two gateways, two VIPs, each gateway MASTER of one and BACKUP of the other.

Half the clients use VIP 10.0.0.1 (gw1 MASTER, gw2 BACKUP), the other half
VIP 10.0.0.4 (gw2 MASTER, gw1 BACKUP). Both gateways work all the time,
so no capacity sits idle: the course's active/active. The price shows when
one fails: the survivor takes over both VIPs and carries all the traffic,
so its load (requests/s, CPU) doubles.

    c1, c3, ... -> VIP 10.0.0.1 ─┐   gw1 10.0.0.2: MASTER of .1 (150), BACKUP of .4 (100) ─┐
                                  s1                                                        ├─ o1 o2 o3
    c2, c4, ... -> VIP 10.0.0.4 ─┘   gw2 10.0.0.3: MASTER of .4 (150), BACKUP of .1 (100) ─┘

Address plan: one /24. VIPs 10.0.0.1 (vrid 51) and 10.0.0.4 (vrid 52),
gateways .2 and .3, origins 10.0.0.(10+K), clients 10.0.0.(100+N).
"""
from mininet.topo import Topo

from lab.core.schema import Field

VIPS = ("10.0.0.1", "10.0.0.4")
PARAMS = {
    "clients": Field(int, default=4, minimum=2, maximum=50),
    "origins": Field(int, default=3, minimum=1, maximum=50),
}


class ActiveActive(Topo):
    def build(self, clients: int = 4, origins: int = 3) -> None:
        switch = self.addSwitch("s1")
        for n in (1, 2):
            groups = [{"vrid": 51 + i, "vip": vip, "priority": 150 if i == n - 1 else 100} for i, vip in enumerate(VIPS)]
            self.addLink(self.addHost(f"gw{n}", ip=f"10.0.0.{1 + n}/24", role="balancer", vrrp=groups), switch)
        for k in range(1, origins + 1):
            self.addLink(self.addHost(f"o{k}", ip=f"10.0.0.{10 + k}/24", role="origin"), switch)
        for n in range(1, clients + 1):
            self.addLink(self.addHost(f"c{n}", ip=f"10.0.0.{100 + n}/24", role="client", target=VIPS[(n - 1) % 2]), switch)
