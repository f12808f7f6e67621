
from scapy.layers.inet import ICMP, IP

from lab.services.probes import echo_request, is_echo_reply


def test_echo_request_is_a_valid_icmp_packet():
    raw = echo_request(0x1234, 7)
    parsed = ICMP(raw)
    assert (parsed.type, parsed.id, parsed.seq) == (8, 0x1234, 7)
    assert parsed.chksum == ICMP(bytes(ICMP(type=8, id=0x1234, seq=7) / b"halab-check")).chksum


def test_only_our_reply_counts():
    reply = bytes(IP(src="10.0.0.13", dst="10.0.0.2") / ICMP(type=0, id=0x1234, seq=7) / b"x")
    assert is_echo_reply(reply, "10.0.0.13", 0x1234, 7)
    assert not is_echo_reply(reply, "10.0.0.12", 0x1234, 7)  # someone else answered
    assert not is_echo_reply(reply, "10.0.0.13", 0x1234, 8)  # an older probe's answer
    request = bytes(IP(src="10.0.0.13", dst="10.0.0.2") / ICMP(type=8, id=0x1234, seq=7) / b"x")
    assert not is_echo_reply(request, "10.0.0.13", 0x1234, 7)
    assert not is_echo_reply(b"\x45" + b"\0" * 10, "10.0.0.13", 1, 1)
