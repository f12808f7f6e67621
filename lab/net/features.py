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
from dataclasses import dataclass
from functools import lru_cache
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


def resolve_bond_impl(asked: str) -> tuple[str, str]:
    """'auto' -> kernel where the kernel can bond, else userspace; 'kernel' without it is an error."""
    bonding = probe("bonding")
    if asked == "kernel" and not bonding.available:
        raise LabError(f"kernel bonding was asked for (bond.impl = \"kernel\") but this kernel cannot make a bond: {bonding.detail}. "
                       "Use impl = \"userspace\" (halab's team agent) or \"auto\".")
    if asked == "auto":
        return ("kernel", "the kernel has bonding") if bonding.available else ("userspace", f"no kernel bonding here ({bonding.detail})")
    return asked, "asked for"


def resolve(scenario: Any, say: Any = print) -> Any:
    """The scenario with every 'auto' choice made for this machine, saying what was chosen and why."""
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


FEATURES = ("netem", "htb", "nftables", "bonding", "ovs", "ovs_kernel_datapath")


def report() -> list[Feature]:
    return [probe(name) for name in FEATURES]
