"""The wire comparison of L4 and L7 balancers, on hand-made captures: each verdict comes from packets alone."""
from lab.packets.l4wire import Segment, compare, connections, rows

C1, NAT, PROXY, O1, O2 = "10.4.0.101", "10.4.0.2", "10.5.0.3", "10.5.0.11", "10.5.0.12"
NAMES = {C1: "c1", NAT: "nat1", PROXY: "tcp1", O1: "o1", O2: "o2"}


def handshake(t, src, sport, dst, dport, isn, answered=True):
    out = [Segment(t, src, sport, dst, dport, "S", isn)]
    if answered:
        out += [Segment(t + 0.001, dst, dport, src, sport, "SA", 9000), Segment(t + 0.002, src, sport, dst, dport, "A", isn + 1)]
    return out


def request(t, src, sport, dst, dport, rid, extra=b""):
    return Segment(t, src, sport, dst, dport, "PA", 0, extra + f"GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\n\r\n".encode())


def test_a_connection_collects_its_requests_and_is_named_by_the_side_that_sent_the_syn():
    segs = handshake(0, C1, 40000, NAT, 80, 100) + [request(0.01, C1, 40000, NAT, 80, "c1-1"), request(0.02, C1, 40000, NAT, 80, "c1-2"),
                                                    Segment(0.03, NAT, 80, C1, 40000, "RA", 0)]
    (c,) = connections(segs)
    assert (c.client, c.cport, c.server, c.isn, c.answered, c.reset, c.requests) == (C1, 40000, NAT, 100, True, True, ["c1-1", "c1-2"])


def test_a_segment_before_any_syn_is_ignored_and_an_unanswered_syn_is_kept():
    segs = [request(0, C1, 39999, NAT, 80, "c1-0")] + handshake(1, C1, 40000, NAT, 80, 5, answered=False)
    (c,) = connections(segs)
    assert c.cport == 40000 and not c.answered and c.requests == []


def test_nat_is_one_connection_decided_on_the_syn_and_the_origin_sees_the_client():
    client = handshake(0, C1, 40000, NAT, 80, 100) + [request(0.1, C1, 40000, NAT, 80, f"c1-{i}") for i in range(3)]
    origin = handshake(0, C1, 40000, O1, 80, 100) + [request(0.1, C1, 40000, O1, 80, f"c1-{i}") for i in range(3)]
    (v,) = compare({"c1": connections(client)}, {"o1": connections(origin)}, {"c1": "nat1"}, NAMES)
    assert (v.same_connection, v.new_connection, v.origin_sees, v.decides, v.most_requests) == (3, 0, {"c1"}, "per connection (on the SYN)", 3)
    table = dict((r[0], r[1]) for r in rows([v])[1:])
    assert table["TCP connections per request path"] == "1 (the client's own)" and table["who asked, told by"] == "not needed"


def test_a_proxy_opens_its_own_connection_and_an_l7_one_spreads_one_client_connection_over_origins():
    client = handshake(0, C1, 40000, PROXY, 80, 100) + [request(0.1, C1, 40000, PROXY, 80, f"c1-{i}") for i in range(2)]
    o1 = handshake(0, PROXY, 50000, O1, 80, 777) + [request(0.1, PROXY, 50000, O1, 80, "c1-0", b"PROXY TCP4 10.4.0.101 10.4.0.3 40000 80\r\n")]
    o2 = handshake(0, PROXY, 50001, O2, 80, 778) + [request(0.1, PROXY, 50001, O2, 80, "c1-1")]
    (v,) = compare({"c1": connections(client)}, {"o1": connections(o1), "o2": connections(o2)}, {"c1": "tcp1"}, NAMES)
    assert (v.same_connection, v.new_connection, v.origin_sees, v.named_by, v.spread) == (0, 2, {"tcp1"}, {"PROXY header"}, 1)
    assert v.decides == "per request"


def test_forwarded_for_is_noticed_and_failures_are_counted():
    client = handshake(0, C1, 40000, NAT, 80, 1) + handshake(1, C1, 40001, NAT, 80, 2, answered=False)
    client.append(request(0.1, C1, 40000, NAT, 80, "c1-7"))
    origin = handshake(0, PROXY, 50000, O1, 80, 3) + [request(0.1, PROXY, 50000, O1, 80, "c1-7", b"")]
    origin[-1] = Segment(0.1, PROXY, 50000, O1, 80, "PA", 0, b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.4.0.101\r\nX-Request-Id: c1-7\r\n\r\n")
    (v,) = compare({"c1": connections(client)}, {"o1": connections(origin)}, {"c1": "lb1"}, NAMES)
    assert v.named_by == {"X-Forwarded-For"} and v.unanswered_syns == 1 and v.client_connections == 2
