"""What this kernel and machine can do, found by trying, not by guessing.

Module lists lie (features may be built in, /lib/modules may be absent), so
each probe makes the thing in a scratch network namespace of its own and
deletes it: a bond, a netem qdisc, an IPVS service... The answer and the
reason are shown by ``halab doctor`` and used to pick kernel or userspace
implementations, with a clear message when a student asks for one that the
machine lacks.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lab.net.errors import LabError


@dataclass(frozen=True)
class Feature:
    name: str
    available: bool
    detail: str


def _run(args: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _in_scratch_netns(commands: list[list[str]]) -> tuple[bool, str]:
    """Run ``commands`` in a fresh namespace; (all succeeded, first error)."""
    ns = f"halab-probe-{os.getpid()}"
    made = _run(["ip", "netns", "add", ns])
    if made.returncode != 0:
        return False, f"cannot create a network namespace: {made.stderr.strip()}"
    try:
        for cmd in commands:
            r = _run(["ip", "netns", "exec", ns, *cmd])
            if r.returncode != 0:
                return False, (r.stderr or r.stdout).strip() or f"{' '.join(cmd)} failed"
        return True, "ok"
    finally:
        _run(["ip", "netns", "del", ns])


@lru_cache(maxsize=None)
def probe(name: str) -> Feature:
    if os.geteuid() != 0:
        return Feature(name, False, "needs root to probe")
    if name == "netem":
        ok, why = _in_scratch_netns([["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]])
    elif name == "bonding":
        ok, why = _in_scratch_netns([["ip", "link", "add", "hbond0", "type", "bond", "mode", "active-backup"]])
    elif name == "htb":
        ok, why = _in_scratch_netns([["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb"]])
    elif name == "nftables":
        ok, why = _in_scratch_netns([["nft", "add", "table", "ip", "halab_probe"]])
    elif name == "nft_nat":  # the L4 balancer's own table: dnat through a numgen/jhash map
        from lab.core.l4 import Backend, ruleset

        table = ruleset("127.0.0.2", 80, "maglev", [Backend("a", "127.0.0.3", 80), Backend("b", "127.0.0.4", 80)])
        ok, why = _in_scratch_netns([["sh", "-c", f"printf '%s' '{table}' | nft -f -"]])
    elif name == "ipvs":  # the kernel's own L4 balancer; halab's L4 lesson runs on nftables and does not need it
        ok = os.path.exists("/proc/net/ip_vs") or _run(["modinfo", "ip_vs"]).returncode == 0 if shutil.which("modinfo") else False
        why = "ip_vs module available (halab's L4 lesson uses nftables NAT either way)" if ok else \
            "no ip_vs module in this kernel: ipvsadm cannot run here (halab's L4 lesson uses nftables NAT)"
    elif name == "gre_tunnel":  # Cluster Edition's own link between servers (gretap)
        ok, why = _in_scratch_netns([["ip", "link", "add", "hgre0", "type", "gretap", "local", "192.0.2.1", "remote", "192.0.2.2"]])
    elif name == "vxlan_tunnel":  # the same over UDP, where the kernel has no GRE
        ok, why = _in_scratch_netns([["ip", "link", "add", "hvx0", "type", "vxlan", "id", "1", "local", "192.0.2.1",
                                      "remote", "192.0.2.2", "dstport", "4789"]])
    elif name == "ovs":
        if not shutil.which("ovs-vsctl"):
            ok, why = False, "ovs-vsctl not installed (apt install openvswitch-switch)"
        else:
            r = _run(["ovs-vsctl", "--timeout=2", "show"])
            ok, why = r.returncode == 0, "ovsdb-server answers" if r.returncode == 0 else f"ovsdb-server is not running: {r.stderr.strip()}"
    elif name == "ovs_kernel_datapath":
        ok, why = os.path.isdir("/sys/module/openvswitch"), "openvswitch kernel module loaded" if os.path.isdir("/sys/module/openvswitch") else "no openvswitch kernel module (userspace datapath only)"
    else:
        raise ValueError(f"unknown feature {name!r}")
    return Feature(name, ok, why if not ok else "available")


def tunnel_kinds() -> list[str]:
    """The kinds of tunnel between servers (lab.core.cluster.KINDS) this kernel can make."""
    from lab.core.cluster import KINDS

    return [k for k in KINDS if probe(f"{k}_tunnel").available]


def resolve_bond_impl(asked: str) -> tuple[str, str]:
    """'auto' -> kernel where the kernel can bond, else userspace; 'kernel' without it is an error."""
    bonding = probe("bonding")
    if asked == "kernel" and not bonding.available:
        raise LabError(f"kernel bonding was asked for (bond.impl = \"kernel\") but this kernel cannot make a bond: {bonding.detail}. "
                       "Use impl = \"userspace\" (halab's team agent) or \"auto\".")
    if asked == "auto":
        return ("kernel", "the kernel has bonding") if bonding.available else ("userspace", f"no kernel bonding here ({bonding.detail})")
    return asked, "asked for"


def check_topology(scenario: Any) -> None:
    """The kernel features the topology's parameters need (a delay needs netem), or a clear error before any build."""
    import topologies

    module, _ = topologies.MODULES[scenario.topology]
    for name in getattr(module, "needs", lambda params: [])(dict(scenario.topology_params)):
        found = probe(name)
        if not found.available:
            raise LabError(f"topology {scenario.topology!r} with these parameters needs the kernel's {name}, which this machine "
                           f"lacks ({found.detail}); 'sudo halab doctor' lists what it has. Without netem, leave delay_ms at 0 "
                           "and slow the answers with [origins] latency_ms instead.")


def check_l4(scenario: Any) -> None:
    """``[l4] impl = "ipvs"`` needs the kernel's IPVS: refused with what to do instead, before anything is built."""
    l4 = scenario.roles.get("l4")
    if l4 is None or l4.impl != "ipvs" or not scenario.layout.by_role("l4"):
        return
    found = probe("ipvs")
    if not found.available:
        raise LabError(f"[l4] impl = \"ipvs\" drives the kernel's IPVS with ipvsadm, and this machine cannot: {found.detail}. "
                       "Use impl = \"halab\": the same settings on nftables (NAT, or DSR with dsr = true), or run on a kernel "
                       "with the ip_vs module (Ubuntu's has it).")


def resolve(scenario: Any, say: Any = print) -> Any:
    """The scenario with every 'auto' choice made for this machine, saying what was chosen and why."""
    check_topology(scenario)
    check_l4(scenario)
    if not scenario.layout.bonds:
        return scenario
    impl, why = resolve_bond_impl(scenario.bond.impl)
    if scenario.bond.impl == "auto":
        say(f"bonding: using the {impl} implementation ({why})")
    return dataclasses.replace(scenario, bond=dataclasses.replace(scenario.bond, impl=impl))


NO_NAMESPACE = ("cannot create a network namespace here ({detail}){where}: run halab in a VM, or in a container with its "
                "own mount namespace (systemd-nspawn, docker --privileged), not in a plain chroot")


def in_chroot() -> bool:
    """True when ``/`` is not a mount point of its own: a plain chroot, where mnexec cannot make ``/`` private.

    /proc/self/mountinfo lists mount points as this process sees them; in a
    chroot into a directory, no mount sits at ``/``. (Comparing ``/`` with
    ``/proc/1/root``, as systemd does, needs ptrace rights the chroot lacks.)
    """
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mount_points = [line.split()[4] for line in f if len(line.split()) > 4]
    except OSError:
        return False  # no /proc: say nothing rather than guess
    return "/" not in mount_points


def preflight(timeout: float = 5.0) -> None:
    """Can a Mininet host start here? ``mnexec -n``, the step every host starts with, with a timeout.

    In a plain chroot ``mnexec`` fails to make ``/`` private ("remount:
    Invalid argument") and Mininet would wait forever for a host shell that
    never comes; this says why within seconds, before anything is built.
    """
    if shutil.which("mnexec") is None:
        raise LabError("mnexec is not installed: apt install mininet (or run 'sudo make install')")
    try:
        r = _run(["mnexec", "-n", "true"], timeout=timeout)  # not -d: a detached child's failure would go unseen
    except subprocess.TimeoutExpired:
        raise LabError(f"mnexec did not finish within {timeout:g} s: the lab cannot start hosts on this machine") from None
    if r.returncode != 0:
        detail = (r.stderr or r.stdout).strip() or f"mnexec exited with {r.returncode}"
        raise LabError(NO_NAMESPACE.format(detail=f"mnexec -n: {detail}", where="; this looks like a chroot" if in_chroot() else ""))


FEATURES = ("netem", "htb", "nftables", "nft_nat", "ipvs", "bonding", "ovs", "ovs_kernel_datapath", "gre_tunnel", "vxlan_tunnel")
# What each lesson needs from the kernel, and what halab does without it (None: the lesson cannot run).
LESSON_NEEDS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "00-availability-and-spof": (),
    "01-health-checks-and-failover": (),
    "02-balancing-algorithms": (),
    "03-vrrp-redundancy": (("nftables", None),),  # the split-brain partition and the failover bench's advert loss
    "04-bonding": (("bonding", "halab's userspace team agent bonds instead"),),
    "05-forward-proxy": (),
    "06-caching": (),
    "07-l4-vs-l7": (("nft_nat", None),),  # the NAT balancer's table
    "08-why-services-go-down": (("nftables", "step 5's VRRP source filter (accept_from = \"peers\") cannot run; "
                                              "the floods, slow clients and faults of the other steps can"),),
}
MIN_PYTHON = (3, 10)  # pyproject.toml's requires-python


def report() -> list[Feature]:
    return [probe(name) for name in FEATURES]


def container() -> str | None:
    """The kind of container this runs in (systemd's name for it), or None on a VM or bare metal."""
    for path in ("/run/systemd/container", "/run/container_type"):
        try:
            return Path(path).read_text().strip() or "container"
        except OSError:
            pass
    return "docker" if os.path.exists("/.dockerenv") else None


def unprivileged() -> bool:
    """True inside a user namespace that does not map the whole uid range (root here is not root on the machine)."""
    try:
        lines = Path("/proc/self/uid_map").read_text().split("\n")
    except OSError:
        return False
    first = lines[0].split()
    return not (len(first) == 3 and first[0] == "0" and first[1] == "0" and int(first[2]) >= 2**32 - 1)


def environment(python: tuple[int, int] = sys.version_info[:2]) -> list[Feature]:
    """Where halab runs: Python, chroot or container, and whether a Mininet host can start (``preflight``)."""
    out = [Feature("python", python >= MIN_PYTHON, f"Python {python[0]}.{python[1]}" + (
        "" if python >= MIN_PYTHON else f": halab needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer"))]
    kind = container()
    if in_chroot():
        out.append(Feature("chroot", False, "/ is not a mount point: a plain chroot, where Mininet cannot start hosts"))
    elif kind is not None:
        out.append(Feature("container", not unprivileged(), f"inside a {kind} container" + (
            ": an unprivileged one (user namespace), where Mininet cannot make links or namespaces" if unprivileged() else
            " with real root: fine if it has every capability (systemd-nspawn --capability=all, docker --privileged)")))
    try:
        preflight()
        out.append(Feature("namespaces", True, "mnexec can start a Mininet host here"))
    except LabError as e:
        out.append(Feature("namespaces", False, str(e)))
    return out


def lessons(found: list[Feature]) -> list[Feature]:
    """Each lesson, ready or not on this machine, from the kernel features ``found``."""
    have = {f.name: f.available for f in found}
    out = []
    for lesson, needs in LESSON_NEEDS.items():
        missing = [(name, fallback) for name, fallback in needs if not have.get(name, False)]
        blocked = [name for name, fallback in missing if fallback is None]
        if blocked:
            out.append(Feature(lesson, False, f"needs {', '.join(blocked)}, which this kernel lacks"))
        elif missing:
            out.append(Feature(lesson, True, "; ".join(f"no kernel {name}: {fallback}" for name, fallback in missing)))
        else:
            out.append(Feature(lesson, True, "ready" + (f" (uses {', '.join(n for n, _ in needs)})" if needs else "")))
    return out
