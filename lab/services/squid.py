"""Squid as the lab's forward proxy (``[proxy] impl = "squid"``), speaking halab's event log.

Squid 5.7 (apt ``squid``) runs in the foreground (``-N``) as a child of this
wrapper, with ``squid.conf`` rendered from the same ``[proxy]`` settings as
halab's proxy (``lab.net.render.squid_config``: the ACL lines verbatim).
Its access log comes to this wrapper on stdout in a format of halab's
(``SQUID_LOGFORMAT``) and each line becomes the same ``proxy_request``
event halab's proxy writes, so reports and the parity test compare the two
directly:

    HALAB 10.1.0.101 TCP_DENIED 403 GET http://gw1/x - 0 180 3904 c1-7   -> proxy_request status=403 result=TCP_DENIED

Everything else Squid says (its cache.log, on stderr) is ``daemon_said``.

Config keys: the ``[proxy]`` settings, hosts, bind, conf_text, conf_path,
workdir, node, events, control.
"""
from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

from lab.core.forward import ProxySettings
from lab.core.schema import from_config
from lab.services import daemon
from lab.services.realbalancer import wait_listening
from lab.services.runtime import Context, serve

SQUID_USER = "proxy"  # Debian's squid drops root for this user (cache_effective_user)


def parse_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """An access-log line in halab's format -> a proxy_request event's fields; None for anything else."""
    parts = line.split()
    if len(parts) != 11 or parts[0] != "HALAB":
        return None
    _, client, result, status, method, url, user, ms, received, sent, rid = parts
    if url == "error:transaction-end-before-headers":
        return "", {}  # a connection that asked nothing (a readiness probe, an idle close): halab's proxy logs none either
    fields: dict[str, Any] = {"client": client, "method": method, "url": url, "status": int(status) if status.isdigit() else 0,
                              "result": result, "duration": int(ms) / 1000 if ms.lstrip("-").isdigit() and int(ms) > 0 else 0.0,
                              "user": None if user == "-" else user, "id": None if rid == "-" else rid}
    if method == "CONNECT" and result == "TCP_TUNNEL":
        fields.update(up=int(received), down=int(sent))
    return "proxy_request", fields


def account() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(SQUID_USER)
    except KeyError:
        return None  # no such user: Squid stays root, which can read everything anyway
    return entry.pw_uid, entry.pw_gid


CACHE_RESULTS = {"TCP_HIT": "HIT", "TCP_MEM_HIT": "HIT", "TCP_MISS": "MISS", "TCP_REFRESH_UNMODIFIED": "REVALIDATED",
                 "TCP_REFRESH_MODIFIED": "MISS", "TCP_REFRESH_FAIL_OLD": "STALE", "TCP_REFRESH_FAIL_ERR": "MISS"}


def cache_result(fields: dict[str, Any]) -> dict[str, Any] | None:
    """What Squid's cache did with a request (its result code), as halab's cache_result event; None for a tunnel or a refusal."""
    label = CACHE_RESULTS.get(fields["result"])
    if label is None or fields["method"] not in ("GET", "HEAD"):
        return None
    squid = "TCP_HIT" if fields["result"] == "TCP_MEM_HIT" else fields["result"]
    return {"id": fields.get("id"), "key": fields["url"], "result": label, "squid": squid, "status": fields["status"], "age": None,
            "why": f"Squid {fields['result']}"}


def workdir_for(cfg: dict[str, Any]) -> Path:
    """Squid's files (pid, hosts, passwd), owned by the user it runs as."""
    work = Path(cfg["workdir"])
    work.mkdir(parents=True, exist_ok=True)
    (work / "hosts").write_text("".join(f"{address} {name}\n" for name, address in sorted(cfg["hosts"].items())))
    settings = from_config(ProxySettings, cfg)
    if settings.users:
        lines = []
        for user, password in sorted(settings.users.items()):
            hashed = subprocess.run(["openssl", "passwd", "-1", "-stdin"], input=password, capture_output=True, text=True,
                                    check=True).stdout.strip()  # MD5-crypt, which basic_ncsa_auth reads
            lines.append(f"{user}:{hashed}\n")
        (work / "passwd").write_text("".join(lines))
    owner = account()
    if owner is not None:
        for path in (work, *work.iterdir()):
            os.chown(path, *owner)
    return work


def service_name(node: str) -> str:
    """Squid's service name for this node (``squid -n``): it names Squid's shared-memory segments, which all the
    lab's nodes see in one /dev/shm, so two Squids (fp1, fp2) must not share it."""
    return "halab" + "".join(c for c in node if c.isalnum())


def remove_segments(name: str) -> None:
    """Squid's shared-memory segments of this service name: a killed Squid (crash, poweroff) leaves them, and the
    next start fails on them ("shm_open ... File exists")."""
    for segment in Path("/dev/shm").glob(f"{name}-*.shm"):
        segment.unlink(missing_ok=True)


async def main(ctx: Context) -> None:
    cfg = ctx.config
    port = from_config(ProxySettings, cfg).port
    work = workdir_for(cfg)
    (work / "squid.pid").unlink(missing_ok=True)  # left by a killed predecessor (poweroff): Squid would refuse to start
    name = service_name(cfg["node"])
    caching = from_config(ProxySettings, cfg).cache
    remove_segments(name)
    cmd = ["squid", "-N", "-n", name, "-f", cfg["conf_path"]]

    def on_line(text: str) -> None:
        parsed = parse_line(text)
        if parsed is None:
            ctx.log.emit("daemon_said", line=text[:300])
        elif parsed[0]:
            ctx.log.emit(parsed[0], **parsed[1])
            cached = cache_result(parsed[1]) if caching else None
            if cached is not None:
                ctx.log.emit("cache_result", **cached)

    async def ready(proc: daemon.Process) -> None:
        ctx.commands["stats"] = lambda req: {"impl": "squid", "pid": proc.pid, "running": proc.returncode is None}
        await wait_listening("127.0.0.1", port, timeout=20.0)  # own_addresses: loopback is always bound
        ctx.ready(port=port, impl="squid", daemon_pid=proc.pid, bind=list(cfg["bind"]))

    # Squid opens its logs (/dev/stdout, /dev/stderr: our pipe) after it has become SQUID_USER
    await daemon.supervise(ctx, "squid", cmd, cfg["conf_path"], cfg["conf_text"], on_line, ready, lambda: remove_segments(name),
                           owner=account())


if __name__ == "__main__":
    serve(main)
