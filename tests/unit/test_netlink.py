"""rtnetlink address messages, built and answered without a kernel (the VRRP speaker's takeover path)."""
import errno
import socket
import struct

from lab.services.netlink import HEADER, IFADDR, NLMSG_ERROR, RTM_DELADDR, RTM_NEWADDR, ack_errno, message


def test_an_add_request_is_what_ip_addr_add_sends():
    raw = message(RTM_NEWADDR, 7, "10.0.0.1", 24, 42)
    length, kind, flags, seq, port = HEADER.unpack_from(raw)
    assert (length, kind, seq, port) == (len(raw), RTM_NEWADDR, 42, 0) and flags == 0x1 | 0x4 | 0x400 | 0x200
    family, prefix, _, scope, index = IFADDR.unpack_from(raw, HEADER.size)
    assert (family, prefix, scope, index) == (socket.AF_INET, 24, 0, 7)
    attrs = raw[HEADER.size + IFADDR.size:]
    assert attrs == struct.pack("=HH", 8, 2) + socket.inet_aton("10.0.0.1") + struct.pack("=HH", 8, 1) + socket.inet_aton("10.0.0.1")
    assert HEADER.unpack_from(message(RTM_DELADDR, 7, "10.0.0.1", 24, 43))[2] == 0x1 | 0x4  # no create flags on delete


def reply(seq, code):
    return HEADER.pack(HEADER.size + 4 + HEADER.size, NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", -code) + HEADER.pack(0, 0, 0, 0, 0)


def test_the_kernels_answer_is_read_for_our_request():
    assert ack_errno(reply(42, 0), 42) == 0
    assert ack_errno(reply(41, errno.EPERM) + reply(42, errno.EEXIST), 42) == errno.EEXIST


# ---- receive timestamps (lab.services.rx_stamps) -----------------------------------------
def test_arrival_reads_the_kernels_timespec():
    from lab.services import rx_stamps

    data = rx_stamps.TIMESPEC.pack(1_700_000_000, 250_000_000)
    assert rx_stamps.arrival([(socket.SOL_SOCKET, rx_stamps.SCM_TIMESTAMPNS, data)]) == 1_700_000_000.25
    assert rx_stamps.arrival([(socket.IPPROTO_IP, 8, b"\0" * 4)]) is None  # other ancillary data: no stamp
    assert rx_stamps.arrival([(socket.SOL_SOCKET, rx_stamps.SCM_TIMESTAMPNS, data[:8])]) is None  # truncated
    assert rx_stamps.arrival([]) is None


def test_a_stamp_counts_unless_the_reader_was_behind():
    from lab.services.rx_stamps import heard_at

    assert heard_at(10.0, 10.0004, stale_after=0.03) == 10.0  # read 0.4 ms after it arrived: the arrival counts
    assert heard_at(10.0, 10.03, stale_after=0.03) == 10.0  # exactly one interval behind still counts
    assert heard_at(10.0, 15.0, stale_after=0.03) == 15.0  # frozen for 5 s: the buffer may have lost newer adverts
    assert heard_at(None, 12.0, stale_after=0.03) == 12.0  # no stamp: the read
