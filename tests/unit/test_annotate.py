"""Packet annotations, on packets built with Scapy (no capture, no root)."""
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import ARP, Ether

from lab.packets.annotate import annotate, describe_http

NAMES = {"10.0.0.2": "lb1", "10.0.0.11": "o1", "10.0.0.101": "c1"}


def pkt(p, t=1.5):
    p.time = t
    return p


def test_handshake_and_reset():
    syn = annotate(pkt(IP(src="10.0.0.2", dst="10.0.0.11") / TCP(sport=40000, dport=80, flags="S")), NAMES, 1.0)
    assert syn == "   0.5000  TCP  lb1(10.0.0.2):40000 -> o1(10.0.0.11):80  SYN  (handshake 1/3: open connection)"
    rst = annotate(pkt(IP(src="10.0.0.11", dst="10.0.0.2") / TCP(sport=80, dport=40000, flags="RA")), NAMES)
    assert "RST" in rst and "refused or reset" in rst


def test_health_probe_and_forwarded_request():
    probe = b"GET /health HTTP/1.1\r\nHost: 10.0.0.11\r\nUser-Agent: halab-check\r\n\r\n"
    assert describe_http(probe) == "HTTP GET /health  (health check probe)"
    fwd = b"GET / HTTP/1.1\r\nHost: lb\r\nX-Request-Id: c1-5\r\nX-Forwarded-For: 10.0.0.101\r\nVia: 1.1 lb1\r\n\r\n"
    line = annotate(pkt(IP(src="10.0.0.2", dst="10.0.0.11") / TCP(sport=40000, dport=80, flags="PA") / fwd), NAMES)
    assert "HTTP GET /  (forwarded, Via: 1.1 lb1; X-Forwarded-For: 10.0.0.101; id c1-5)" in line


def test_answer():
    ans = b"HTTP/1.1 200 OK\r\nX-Served-By: o1\r\nContent-Length: 3\r\n\r\nhi\n"
    assert describe_http(ans) == "HTTP 200 answer  (served by o1)"
    assert describe_http(b"\x00\x01binary") is None


def test_arp_and_icmp():
    who = annotate(pkt(Ether() / ARP(op=1, psrc="10.0.0.2", pdst="10.0.0.11")), NAMES)
    assert "who has o1(10.0.0.11)? tell lb1(10.0.0.2)" in who
    garp = annotate(pkt(Ether() / ARP(op=2, psrc="10.0.0.2", pdst="10.0.0.2", hwsrc="00:00:00:00:00:02")), NAMES)
    assert "gratuitous" in garp
    ping = annotate(pkt(IP(src="10.0.0.2", dst="10.0.0.11") / ICMP(type=8)), NAMES)
    assert "echo request (ping)" in ping


def client_hello(server_name):
    """The first bytes a real TLS client sends (Python's ssl, through a memory BIO: no network)."""
    import ssl

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        conn.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def test_tls_is_named_with_the_server_name_that_travels_in_clear():
    from lab.packets.annotate import describe_tls, server_name

    hello = client_hello("gw1.example")
    assert server_name(hello) == "gw1.example"
    assert describe_tls(hello) == "TLS handshake: ClientHello for gw1.example (the server name travels in clear)"
    assert describe_tls(hello[:120]) == "TLS handshake: ClientHello"  # a short capture (snaplen) cut it: no guess
    assert describe_tls(b"\x17\x03\x03\x00\x20" + bytes(32)) == "TLS application data (encrypted), 37 bytes"
    assert describe_tls(b"GET / HTTP/1.1\r\n") is None


def test_each_message_gets_its_leg_and_direction():
    from lab.packets.annotate import leg

    assert leg("client", "proxy") == "  [client->proxy inbound]"
    assert leg("proxy", "balancer") == "  [proxy->balancer inbound]"
    assert leg("origin", "balancer") == "  [origin->balancer outbound]"
    assert leg("balancer", "client") == "  [balancer->client outbound]"
    assert leg("client", "client") == leg(None, "proxy") == ""
    names = {"10.1.0.101": "c1", "10.1.0.2": "fp1"}
    pkt = Ether() / IP(src="10.1.0.101", dst="10.1.0.2") / TCP(sport=40000, dport=3128, flags="PA") / (
        b"CONNECT gw1:443 HTTP/1.1\r\nHost: gw1:443\r\n\r\n")
    line = annotate(pkt, names, roles={"c1": "client", "fp1": "proxy"})
    assert "HTTP CONNECT gw1:443" in line and line.endswith("[client->proxy inbound]")
