"""active_standby: gateways share one virtual IP with VRRP; one works, the others wait.

Clients only know the VIP 10.0.0.1. gw1 (priority 150) is MASTER and holds
it; gw2 (priority 100) is BACKUP and takes it over when gw1's adverts stop.
Both gateways are L7 balancers over the same origins, so whichever holds the
VIP can serve. Active/standby's trade-off: safe, but gw2's capacity sits idle.

    c1 ─┐             gw1 10.0.0.2  (VRRP MASTER, priority 150) ─┐
    c2 ─┼──── s1 ─────                  VIP 10.0.0.1              ├─ o1 o2 o3
        │             gw2 10.0.0.3  (VRRP BACKUP, priority 100) ─┘

With ``gateways = 3`` or more it is N-way redundancy (multiplexing):
priorities 150, 125, 100, 75, ..., so successive failures walk down the
list, and each takeover waits a little longer (lower priority, more Skew_Time).

Address plan: one /24. VIP 10.0.0.1, gateways 10.0.0.2, .3, ..., origins
10.0.0.(10+K), clients 10.0.0.(100+N). Everything shares switch s1, so the
VRRP adverts, the GARPs and the client traffic all cross the same LAN.
"""
from mininet.topo import Topo

from lab.core.schema import Field

VIP = "10.0.0.1"
PARAMS = {
    "gateways": Field(int, default=2, minimum=2, maximum=6, help="VRRP gateways sharing the VIP (3+: N-way)"),
    "clients": Field(int, default=2, minimum=1, maximum=50),
    "origins": Field(int, default=3, minimum=1, maximum=50),
}


class ActiveStandby(Topo):
    def build(self, gateways: int = 2, clients: int = 2, origins: int = 3) -> None:
        switch = self.addSwitch("s1")
        for n in range(1, gateways + 1):
            priority = 150 - 50 * (n - 1) if gateways == 2 else 150 - 25 * (n - 1)
            gw = self.addHost(f"gw{n}", ip=f"10.0.0.{1 + n}/24", role="balancer",
                              vrrp=[{"vrid": 51, "vip": VIP, "priority": priority}])
            self.addLink(gw, switch)
        for k in range(1, origins + 1):
            self.addLink(self.addHost(f"o{k}", ip=f"10.0.0.{10 + k}/24", role="origin"), switch)
        for n in range(1, clients + 1):
            self.addLink(self.addHost(f"c{n}", ip=f"10.0.0.{100 + n}/24", role="client", target=VIP), switch)
