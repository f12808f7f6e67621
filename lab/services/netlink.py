"""Adding and removing an IPv4 address through rtnetlink, as keepalived does: no `ip` process per change.

A VRRP takeover is "add the VIP, then announce it"; spawning ``ip addr add``
costs a fork and an exec (milliseconds on a small VM) right on that path,
which shows at short advert intervals. One RTM_NEWADDR / RTM_DELADDR
message on a netlink socket does the same in microseconds. The kernel's
answer is an ACK carrying an errno: adding an address that is already there
(EEXIST) or removing one that is not (EADDRNOTAVAIL) is not an error here,
because the state wanted is reached either way.
"""
from __future__ import annotations

import errno
import os
import socket
import struct

RTM_NEWADDR, RTM_DELADDR = 20, 21
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFA_ADDRESS, IFA_LOCAL = 1, 2
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, interface index
ATTR = struct.Struct("=HH")  # rtattr: length, type
ALREADY = {RTM_NEWADDR: errno.EEXIST, RTM_DELADDR: errno.EADDRNOTAVAIL}


def message(kind: int, ifindex: int, address: str, prefix: int, sequence: int) -> bytes:
    """One RTM_NEWADDR or RTM_DELADDR request (pure: tested without a kernel)."""
    packed = socket.inet_aton(address)
    attrs = b"".join(ATTR.pack(ATTR.size + 4, kind_) + packed for kind_ in (IFA_LOCAL, IFA_ADDRESS))
    body = IFADDR.pack(socket.AF_INET, prefix, 0, 0, ifindex) + attrs
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if kind == RTM_NEWADDR else 0)
    return HEADER.pack(HEADER.size + len(body), kind, flags, sequence, 0) + body


def ack_errno(reply: bytes, sequence: int) -> int:
    """The errno of the kernel's answer to ``sequence`` (0: done)."""
    offset = 0
    while offset + HEADER.size <= len(reply):
        length, kind, _, seq, _ = HEADER.unpack_from(reply, offset)
        if kind == NLMSG_ERROR and seq == sequence:
            return -struct.unpack_from("=i", reply, offset + HEADER.size)[0]
        offset += max(length, HEADER.size) + (-length % 4)
    raise OSError(errno.EPROTO, f"no netlink answer to request {sequence}")


class Addresses:
    """An rtnetlink socket of the node's network namespace (open it inside the node)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.settimeout(1.0)
        self.sequence = os.getpid() & 0xFFFF

    def change(self, verb: str, interface: str, address: str, prefix: int) -> None:
        """``verb`` 'add' or 'del'; raises OSError with the kernel's reason, except 'it is already so'."""
        kind = RTM_NEWADDR if verb == "add" else RTM_DELADDR
        self.sequence += 1
        self.sock.send(message(kind, socket.if_nametoindex(interface), address, prefix, self.sequence))
        code = ack_errno(self.sock.recv(65536), self.sequence)
        if code and code != ALREADY[kind]:
            raise OSError(code, f"{verb} {address}/{prefix} on {interface}: {os.strerror(code)}")

    def close(self) -> None:
        self.sock.close()
