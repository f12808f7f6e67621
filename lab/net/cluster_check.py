"""``halab doctor --cluster SERVER``: each thing a server needs to take part in a lab, checked in order.

Every check says what it found; the first that fails says what to do, and
the checks after it that depend on it are not tried (without ssh nothing
else can be asked). The same connection the lab would use is used here:
the scenario's user and ``ssh_config``, the agent at this machine's path.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from typing import Any, Callable

from lab.core import cluster as plan
from lab.core.cluster import LOCAL, ClusterSettings
from lab.core.schema import ConfigError
from lab.net import features
from lab.net.cluster import AgentLink, server_address, ssh_base, underlay_mtu
from lab.net.errors import LabError
from lab.net.features import Feature


def settings_from(servers: str, scenario: str | None) -> ClusterSettings:
    """``--cluster lab2[,lab3]`` alone, or with ``--scenario F`` its [cluster] settings (``all``: every server it names)."""
    names = tuple(servers.split(","))
    if not scenario:
        return ClusterSettings(servers=(LOCAL, *names))
    from lab.runner import load_scenario

    settings = load_scenario(scenario).cluster
    if settings is None:
        raise ConfigError(scenario, "", "has no [cluster] table")
    return settings if servers == "all" else dataclasses.replace(settings, servers=(LOCAL, *names))


def check_all(settings: ClusterSettings, show: Callable[[list[Feature]], None]) -> bool:
    """Every other server of ``settings``, one block each; True when nothing is missing anywhere."""
    found = []
    for server in settings.remote:
        print(f"== server {server}")
        result = check(settings, server)
        show(result)
        found += result
    return all(f.available for f in found)


def check(settings: ClusterSettings, server: str) -> list[Feature]:
    out: list[Feature] = []

    def say(name: str, ok: bool, detail: str) -> bool:
        out.append(Feature(f"{server}: {name}", ok, detail))
        return ok

    try:
        address = server_address(settings, server)
    except LabError as e:
        say("address", False, str(e))
        return out
    say("address", True, address)
    dest = f"{settings.user}@{address}"
    began = time.time()
    r = subprocess.run([*ssh_base(settings), dest, "true"], capture_output=True, text=True, timeout=30)
    if not say("ssh", r.returncode == 0, f"logged in as {settings.user} with a key, in {1000 * (time.time() - began):.0f} ms"
               if r.returncode == 0 else
               f"`ssh {dest} true` failed ({(r.stderr.strip() or 'exit ' + str(r.returncode))}): put this machine's key "
               f"(ssh-keygen; ~/.ssh/id_ed25519.pub) in {settings.user}'s ~/.ssh/authorized_keys there, and accept its "
               f"host key once with `ssh {dest}`"):
        return out
    r = subprocess.run([*ssh_base(settings), dest, "id -u"], capture_output=True, text=True, timeout=30)
    if not say("root", r.stdout.strip() == "0", "the lab's commands run as root there" if r.stdout.strip() == "0" else
               f"{settings.user} is not root there (uid {r.stdout.strip() or '?'}): log in as root "
               "(PermitRootLogin prohibit-password in sshd_config) and set [cluster] user = \"root\""):
        return out
    r = subprocess.run([*ssh_base(settings), dest, "test", "-x", sys.executable], capture_output=True, timeout=30)
    if not say("halab", r.returncode == 0, f"{sys.executable} is there" if r.returncode == 0 else
               f"no {sys.executable} there: clone halab to the same folder on that server and run `sudo make install` in it"):
        return out
    try:
        agent = AgentLink(server, address, settings)
    except LabError as e:
        say("agent", False, str(e))
        return out
    try:
        say("agent", True, "lab.net.agent runs there and holds its lab slot" + (
            f" (it removed what a crashed lab left: {', '.join(agent.cleaned)})" if agent.cleaned else ""))
        _remote(agent, say)
    finally:
        agent.close()
    return out


def _remote(agent: AgentLink, say: Any) -> None:
    report = agent.ask("doctor")
    say("programs", not report["missing"], "every program halab and Mininet run is installed" if not report["missing"] else
        "missing: " + ", ".join(report["missing"]))
    say("namespaces", not report["hosts"], "mnexec can start a Mininet host there" if not report["hosts"] else report["hosts"])
    info = agent.ask("hello")
    here = features.tunnel_kinds()
    try:
        kind = plan.choose_tunnel("auto", {LOCAL: here, agent.server: info["tunnels"]})
        say("tunnel", True, f"{kind} (this machine can make {', '.join(here)}; that one {', '.join(info['tunnels'])})")
    except ValueError as e:
        say("tunnel", False, str(e))
        kind = ""
    walls = report["dropping_input"]
    port = "UDP port 4789" if kind == "vxlan" else "IP protocol 47 (GRE)"
    say("firewall", not walls, f"no input chain drops by default there: {port} gets through" if not walls else
        f"input chains that drop by default: {', '.join(walls)}; accept {port} from this machine there")
    if kind:
        mtu = underlay_mtu(agent.address)
        inner = plan.inner_mtu(kind, mtu)
        say("mtu", True, f"the path there has MTU {mtu}: the lab's interfaces get {inner}" +
            ("" if inner == 1500 else f" (raise the path's MTU to {1500 + plan.TUNNEL_OVERHEAD[kind]} for full 1500-byte frames)"))
    clock = agent.clock()
    say("clock", True, f"{1000 * clock.offset:+.3f} ms from this machine's, known to ±{1000 * clock.bound:.3f} ms "
        f"(best of {clock.samples} round trips); the report puts that bound beside times measured across servers")
