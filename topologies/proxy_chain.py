"""proxy_chain: the path the course draws: client -> forward proxy -> internet -> gateway -> origin.

Three networks joined by a router and a gateway. The forward proxies sit on
the clients' side (the client *chooses* them); the gateway gw1 (the L7
balancer, a reverse proxy) sits on the origins' side and looks like the
origin to everyone outside. The origins' LAN is reachable only through gw1.

      client LAN 10.1.0.0/24           "internet" 10.2.0.0/24       origin LAN 10.3.0.0/24
    c1 .101 (proxies fp1, fp2) ─┐                                       ┌─ o1 .11
    c2 .102 (proxies fp1, fp2) ─┤                                       ├─ o2 .12
    c3 .103 (direct)           ─┼─ s1 ─ r1 ─────── s2 ─── gw1 ───── s3 ─┴─ o3 .13
    fp1 .2  (forward proxy)    ─┤     .254   .254       .2    .1
    fp2 .3  (forward proxy)    ─┘

Address plan: client LAN 10.1.0.0/24 on s1 (clients 10.1.0.(100+N),
proxies fp1 10.1.0.2 and fp2 10.1.0.3 on port 3128, router r1-eth0
10.1.0.254, everyone's default gateway); internet 10.2.0.0/24 on s2 (r1-eth1
10.2.0.254, gw1-eth0 10.2.0.2: the site's public address, port 80); origin
LAN 10.3.0.0/24 on s3 (gw1-eth1 10.3.0.1, origins 10.3.0.(10+K)). r1
forwards between its two networks (``delay_ms`` puts a distance between
them, with the kernel's netem); gw1 does not forward at all, so nothing
outside reaches an origin except through gw1's service. The origins have no
route out: they answer gw1 on their own LAN and nobody else.

The legs of one request through a proxy, and their direction (RFC 9110
3.7: toward the origin is *inbound*, toward the client *outbound*):

    c1 -> fp1 (client LAN)       inbound   absolute form: GET http://gw1/ ...
    fp1 -> gw1 (via r1)          inbound   origin form, Via: 1.1 fp1 (halab), X-Forwarded-For: c1
    gw1 -> o2 (origin LAN)       inbound   Via: 1.1 fp1 (halab), 1.1 gw1; X-Forwarded-For: c1, fp1
    o2 -> gw1 -> fp1 -> c1       outbound  the answer, each hop adding itself to Via

A client going direct (c3) skips the first two legs: gw1 and the origins
see c3's own address. Through a proxy they see the proxy's, and only
X-Forwarded-For (if the proxy adds it) tells who asked.

Two ways to make the proxy redundant, side by side with ``proxy_vip = true``
(two proxies): the clients' own failover, a list of proxies tried in order
(c1: fp1, then fp2, as a PAC file says), and VRRP between the proxies: fp1
(priority 150) and fp2 (100) share the virtual address 10.1.0.1, and c2 uses
only that address. c3 still goes direct.
"""
from mininet.link import TCLink
from mininet.node import Node
from mininet.topo import Topo

from lab.core.schema import Field

GATEWAY = "10.2.0.2"  # gw1's public address: where every client's requests are aimed
PROXY_VIP = "10.1.0.1"  # with proxy_vip: the proxies' shared address (VRRP)
PARAMS = {
    "clients": Field(int, default=3, minimum=1, maximum=50, help="client hosts on the client LAN"),
    "direct": Field(int, default=1, minimum=0, maximum=50, help="how many of them (the last ones) use no proxy"),
    "proxies": Field(int, default=2, minimum=1, maximum=2, help="forward proxies on the client LAN (2: clients fail over)"),
    "origins": Field(int, default=3, minimum=1, maximum=50, help="origin servers behind the gateway"),
    "proxy_vip": Field(bool, default=False, help="the two proxies also share 10.1.0.1 by VRRP, and c2 uses that address only"),
    "delay_ms": Field(float, default=0.0, minimum=0, maximum=1000,
                      help="milliseconds added each way on the internet link r1-s2 (the kernel's netem; halab doctor says if it has it)"),
}


def needs(params: dict) -> list[str]:  # type: ignore[type-arg]
    """Kernel features these parameters need (lab.net.features checks them before anything is built)."""
    return ["netem"] if params.get("delay_ms") else []


class Router(Node):
    """A host that forwards IPv4 between its interfaces (net.ipv4.ip_forward is per network namespace)."""

    def config(self, **params):  # type: ignore[no-untyped-def]
        result = super().config(**params)
        self.cmd("sysctl -q -w net.ipv4.ip_forward=1")
        return result


class ProxyChain(Topo):
    def build(self, clients: int = 3, direct: int = 1, proxies: int = 2, origins: int = 3, proxy_vip: bool = False,
              delay_ms: float = 0.0) -> None:
        if direct > clients:
            raise ValueError(f"direct = {direct} is more than the {clients} clients")
        if proxy_vip and (proxies != 2 or clients - direct < 2):
            raise ValueError("proxy_vip needs proxies = 2 and at least two clients using proxies (c1 with a list, c2 with the VIP)")
        s1, s2, s3 = self.addSwitch("s1"), self.addSwitch("s2"), self.addSwitch("s3")
        r1 = self.addHost("r1", cls=Router, ip="10.1.0.254/24", role="router")
        self.addLink(r1, s1)
        if delay_ms:  # the distance between the two networks: every packet across waits, each way
            self.addLink(r1, s2, cls=TCLink, delay=f"{delay_ms:g}ms", params1={"ip": "10.2.0.254/24"})
        else:
            self.addLink(r1, s2, params1={"ip": "10.2.0.254/24"})
        gw = self.addHost("gw1", ip=f"{GATEWAY}/24", role="balancer", defaultRoute="via 10.2.0.254")
        self.addLink(gw, s2)
        self.addLink(gw, s3, params1={"ip": "10.3.0.1/24"})
        names = [f"fp{n}" for n in range(1, proxies + 1)]
        for n, name in enumerate(names, 1):
            vrrp = [{"vrid": 61, "vip": PROXY_VIP, "priority": 150 if n == 1 else 100}] if proxy_vip else []
            self.addLink(self.addHost(name, ip=f"10.1.0.{1 + n}/24", role="proxy", defaultRoute="via 10.1.0.254", vrrp=vrrp), s1)
        for k in range(1, origins + 1):
            self.addLink(self.addHost(f"o{k}", ip=f"10.3.0.{10 + k}/24", role="origin"), s3)
        for n in range(1, clients + 1):
            chosen = names if n <= clients - direct else []
            if proxy_vip and n == 2:
                chosen = [PROXY_VIP]  # whichever proxy holds the VIP
            self.addLink(self.addHost(f"c{n}", ip=f"10.1.0.{100 + n}/24", role="client", target=GATEWAY, proxies=chosen,
                                      defaultRoute="via 10.1.0.254"), s1)
