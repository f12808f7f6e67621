import struct
from collections import Counter

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from lab.core.bonding import Bond, layer2_hash, layer34_hash


def frame(sport=1000, dport=80, src="10.0.0.10", dst="10.0.0.101", smac="00:00:00:00:00:0a", dmac="00:00:00:00:00:65"):
    return bytes(Ether(src=smac, dst=dmac) / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport))


def test_active_backup_uses_one_member_and_fails_over_in_order():
    b = Bond("active-backup", ["eth0", "eth1", "eth2"])
    assert b.transmit(frame()) == ["eth0"] and b.accepts("eth0") and not b.accepts("eth1")
    f = b.link("eth0", False, 3.0)
    assert (f.before, f.after, f.at) == ("eth0", "eth1", 3.0) and b.transmit(frame()) == ["eth1"]
    assert b.link("eth0", True, 4.0) is None and b.active == "eth1"  # no failback: the active one is fine
    b.link("eth1", False, 5.0)
    assert b.active == "eth2"
    b.link("eth2", False, 6.0)
    assert b.link("eth2", False, 6.1) is None and b.transmit(frame()) == ["eth0"]


def test_all_links_down_sends_nothing_then_the_first_back_becomes_active():
    b = Bond("active-backup", ["eth0", "eth1"])
    b.link("eth0", False, 1), b.link("eth1", False, 1)
    assert b.active is None and b.transmit(frame()) == []
    f = b.link("eth1", True, 2)
    assert f.after == "eth1"


def test_balance_rr_alternates_over_live_members():
    b = Bond("balance-rr", ["eth0", "eth1"])
    assert [b.transmit(frame())[0] for _ in range(4)] == ["eth0", "eth1", "eth0", "eth1"]
    b.link("eth1", False, 1)
    assert {b.transmit(frame())[0] for _ in range(4)} == {"eth0"}
    assert b.accepts("eth0") and not b.accepts("eth1")


def test_broadcast_sends_on_every_live_member():
    b = Bond("broadcast", ["eth0", "eth1"])
    assert b.transmit(frame()) == ["eth0", "eth1"]


def test_layer2_hash_is_the_kernel_formula():
    f = frame()
    assert layer2_hash(f) == 0x0A ^ 0x65 ^ 0x0800
    b = Bond("balance-xor", ["eth0", "eth1"], "layer2")
    assert len({b.transmit(frame(sport=p))[0] for p in range(1000, 1100)}) == 1  # one MAC pair: one link


def test_layer34_spreads_flows_but_keeps_each_flow_on_one_link():
    b = Bond("balance-xor", ["eth0", "eth1"], "layer3+4")
    per_flow = {p: {b.transmit(frame(sport=p))[0] for _ in range(3)} for p in range(1000, 1200)}
    assert all(len(v) == 1 for v in per_flow.values())
    counts = Counter(next(iter(v)) for v in per_flow.values())
    assert min(counts.values()) > 60
    h = layer34_hash(frame(sport=1000, dport=80))
    x = (1000 ^ 80) ^ struct.unpack("!I", bytes([10, 0, 0, 10]))[0] ^ struct.unpack("!I", bytes([10, 0, 0, 101]))[0]
    x ^= x >> 16
    x ^= x >> 8
    assert h == x


def test_bad_configuration():
    with pytest.raises(ValueError, match="unknown bonding mode 'lacp'"):
        Bond("lacp", ["eth0"])
    with pytest.raises(ValueError, match="xmit_hash_policy"):
        Bond("balance-xor", ["eth0"], "layer5")
    with pytest.raises(ValueError, match="not a member"):
        Bond("balance-rr", ["eth0"]).link("eth9", False, 0)


def test_complete_checksum_matches_scapy_for_tcp_and_udp():
    from scapy.layers.inet import UDP

    from lab.core.bonding import complete_checksum

    for l4 in (TCP(sport=1234, dport=80, flags="PA") / b"GET / HTTP/1.1\r\n\r\n", UDP(sport=5, dport=53) / b"abc"):
        good = bytes(Ether() / IP(src="10.0.0.101", dst="10.0.0.10") / l4)
        broken = bytearray(good)
        offset = 14 + 20 + (16 if isinstance(l4, TCP) else 6)
        broken[offset:offset + 2] = b"\x12\x34"  # what a partial (offloaded) checksum looks like
        assert complete_checksum(bytes(broken)) == good
    arp = bytes(Ether(type=0x0806) / (b"\0" * 28))
    assert complete_checksum(arp) == arp
