"""A stand-in second server on this machine: a network namespace running Debian's sshd.

The cluster tests and ``halab bench scale --split`` use it where a course
would use a second VM.

It is reached over a veth pair (10.250.0.1 here, 10.250.0.2 there) whose MTU
leaves room for a VXLAN header, with key-based root login made for it:
its own host key, client key, ``authorized_keys``, ``sshd_config`` and
``ssh_config`` in a temporary directory, nothing in ``/etc/ssh`` or
``~/.ssh``. It shares this machine's filesystem and process table, so the
lab finds its files where it wrote them; the lab tells that by a token file,
not by assuming it. ``close`` ends the sshd it started and deletes the
namespace (and with it both ends of the veth pair) and the directory.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NETNS = "halab-srv2"
HERE, THERE = "10.250.0.1", "10.250.0.2"
LINK = ("hsrv0", "hsrv1")
UNDERLAY_MTU = 1550  # 1500 inside + VXLAN's 50


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, text=True)


class SecondServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="halab-srv2-"))
        self.sshd: subprocess.Popen[bytes] | None = None
        self.made_privsep = False
        self.ssh_config = self.dir / "ssh_config"
        self.address = THERE

    def start(self) -> "SecondServer":
        if os.path.exists(f"/run/netns/{NETNS}"):
            raise RuntimeError(f"network namespace {NETNS} exists already: another stand-in server is running (a test or a "
                               f"bench); if none is, remove it with `ip netns del {NETNS}`")
        d = self.dir
        for key in ("hostkey", "clientkey"):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key))
        shutil.copy(d / "clientkey.pub", d / "authorized_keys")
        (d / "sshd_config").write_text(
            f"ListenAddress {THERE}\nHostKey {d / 'hostkey'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\nStrictModes no\nMaxStartups 100:30:200\nMaxSessions 100\n"
            "ClientAliveInterval 2\nClientAliveCountMax 3\n")  # a session whose client vanished ends within 6 s
        self.ssh_config.write_text(
            f"Host {THERE}\n  User root\n  IdentityFile {d / 'clientkey'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {d / 'known_hosts'}\n  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n")
        _run("ip", "netns", "add", NETNS)
        _run("ip", "link", "add", LINK[0], "mtu", str(UNDERLAY_MTU), "type", "veth", "peer", "name", LINK[1], "mtu",
             str(UNDERLAY_MTU), "netns", NETNS)
        _run("ip", "addr", "add", f"{HERE}/30", "dev", LINK[0])
        _run("ip", "link", "set", LINK[0], "up")
        for args in (["addr", "add", f"{THERE}/30", "dev", LINK[1]], ["link", "set", LINK[1], "up"], ["link", "set", "lo", "up"]):
            _run("ip", "-n", NETNS, *args)
        if not os.path.isdir("/run/sshd"):  # sshd's privilege separation directory
            os.makedirs("/run/sshd", mode=0o755)
            self.made_privsep = True
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.sshd = subprocess.Popen(["ip", "netns", "exec", NETNS, sshd, "-D", "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", THERE, "true"],
                             capture_output=True).returncode != 0:
            if time.time() > deadline or self.sshd.poll() is not None:
                log = (d / "sshd.log").read_text() if (d / "sshd.log").exists() else ""
                self.close()
                raise RuntimeError(f"sshd in {NETNS} did not let us in: {log[-500:]}")
            time.sleep(0.1)
        return self

    def ssh(self, command: str) -> str:
        """Run a command on the second server (in its namespace) and return its output."""
        return subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", THERE, command],
                              capture_output=True, text=True, timeout=30).stdout

    def close(self) -> None:
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            self.sshd.wait(timeout=5)
        # and every process still in its namespace (sshd's sessions outlive it): all of them this server's own
        for pid in subprocess.run(["ip", "netns", "pids", NETNS], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)  # takes both veth ends with it
        if self.made_privsep:
            shutil.rmtree("/run/sshd", ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
