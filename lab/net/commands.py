"""Every program halab, Mininet and the tests run on the machine, and the Debian package that brings it.

``scripts/install-system.sh`` installs these packages; a unit test keeps the
two lists in step, and ``halab doctor`` says which program is missing and
what to install, before a lab fails halfway (a minimal image has no
``sysctl``, which Mininet calls, unless ``procps`` is installed).
"""
from __future__ import annotations

import shutil

# program -> (Debian package, who runs it)
COMMANDS = {
    "ip": ("iproute2", "halab and Mininet: links, addresses, namespaces"),
    "tc": ("iproute2", "Mininet: link bandwidth and delay (htb, tbf)"),
    "ss": ("iproute2", "tests: is a port listening"),
    "sysctl": ("procps", "Mininet: kernel settings of the hosts"),
    "ethtool": ("ethtool", "Mininet: offloads of the veth links"),
    "ifconfig": ("net-tools", "Mininet: interface up/down"),
    "brctl": ("bridge-utils", "Mininet's Linux bridge switches"),
    "mnexec": ("mininet", "Mininet: starting hosts in their namespaces"),
    "nft": ("nftables", "the L4 balancer's NAT table, partition faults, advert loss in the failover bench, "
                        "[vrrp] accept_from = \"peers\""),
    "conntrack": ("conntrack", "the L4 balancer: flows per backend, flush_on_down"),
    "ipvsadm": ("ipvsadm", "[l4] impl = \"ipvs\", where the kernel has IPVS"),
    "ipvsadm-restore": ("ipvsadm", "[l4] impl = \"ipvs\": a batch of changes"),
    "tcpdump": ("tcpdump", "[capture] and halab sniff"),
    "ping": ("iputils-ping", "ICMP health checks and the Mininet CLI"),
    "curl": ("curl", "keepalived's track script and the benches"),
    "wrk": ("wrk", "halab bench"),
    "iperf": ("iperf", "the bonding lesson's throughput test"),
    "haproxy": ("haproxy", "impl = \"haproxy\" and halab bench"),
    "nginx": ("nginx-light", "impl = \"nginx\" and halab bench"),
    "keepalived": ("keepalived", "[vrrp] impl = \"keepalived\""),
    "squid": ("squid", "[proxy] impl = \"squid\""),
    "varnishd": ("varnish", "[balancer] impl = \"varnish\" and halab bench cache"),
    "varnishncsa": ("varnish", "[balancer] impl = \"varnish\": one access line per request, read back as events"),
    "varnishlog": ("varnish", "[balancer] impl = \"varnish\": its health probes, read back as events"),
    "cc": ("gcc", "varnishd compiles each VCL with the C compiler"),
    "openssl": ("openssl", "Squid's password file for Basic proxy authentication"),
    "bash": ("bash", "the cache test suite's runner (halab conformance cache)"),
    "ssh": ("openssh-client", "[cluster]: the hosts, services and agent on another server, and halab doctor --cluster"),
    "ssh-keygen": ("openssh-client", "the cluster test's keys for its second server"),
    "sshd": ("openssh-server", "the cluster test's second server (a namespace of this machine), started by the test"),
    "unshare": ("util-linux", "the platform test: a chroot in a private mount namespace"),
    "chroot": ("coreutils", "the platform test"),
}


def missing() -> list[tuple[str, str, str]]:
    """(program, package, what needs it) for each program not on this machine's PATH."""
    return [(cmd, pkg, why) for cmd, (pkg, why) in COMMANDS.items() if shutil.which(cmd) is None]
