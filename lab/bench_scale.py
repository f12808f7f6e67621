"""``halab bench scale``: how big a lab this machine holds: boot-to-ready time and memory against the number of origins.

For each size, one ``single_lb`` network with one client and N origins is
built, every service started (each origin is its own Python process, as on
a real server), and one request per origin sent through lb1 with curl
to show that all of them serve. Measured per size:

- **build**: Mininet's hosts, links and switch (namespaces, veth pairs);
- **ready**: from the built network to every service saying it is ready;
- **served**: lb1 answered through all N origins (round robin);
- **memory**: what the machine lost (``MemAvailable`` before and after, the
  kernel's share included) and the services' own share of it (their
  proportional set size);
- **teardown**: stopping everything and removing the network.

The machine's limits follow from the per-origin costs: the summary says
how many origins its memory would hold and what one 2-core VM's boot time
becomes. ``single_lb`` holds up to 200 origins (past 89 on a /16).
"""
from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

from lab.core.scenario import parse_scenario
from lab.net.lab import Lab, LabError
from lab.net.roles import plan_services

SIZES = (10, 50, 100, 200)


def meminfo_kib(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    if m is None:
        raise LabError(f"no {field} in /proc/meminfo")
    return int(m.group(1))


def pss_kib(pid: int) -> int:
    """A process's proportional set size: its own pages plus its share of those it shares (the Python libraries every
    service maps): summed over processes, the memory they really take, where resident sizes count shared pages again."""
    try:
        m = re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def run_scale_bench(run_dir: Path, sizes: tuple[int, ...] = SIZES, say: Any = print, split: bool = False) -> list[dict[str, float]]:
    """One lab per size; with ``split``, half the origins on a second server (a stand-in on this machine, lab.net.stand_in)."""
    if not split:
        return _sizes(run_dir, sizes, say, None)
    from lab.net.stand_in import SecondServer

    server = SecondServer().start()
    try:
        return _sizes(run_dir, sizes, say, server)
    finally:
        server.close()


def _sizes(run_dir: Path, sizes: tuple[int, ...], say: Any, server: Any) -> list[dict[str, float]]:
    import topologies

    rows = []
    for n in sizes:
        table: dict[str, Any] = {
            "name": f"bench-scale-{n}", "duration": 60, "topology": {"name": "single_lb", "clients": 1, "origins": n},
            "balancer": {"log_requests": False, "health": {"inter": 2.0}},
        }
        if server is not None:  # the first half of the origins there: each of their links is a tunnel
            table["cluster"] = {"servers": ["localhost", "lab2"], "addresses": {"lab2": server.address}, "ssh_config": str(server.ssh_config),
                                "place": {f"o{k}": "lab2" for k in range(1, n // 2 + 1)}}
        scenario = parse_scenario(table, "halab bench scale", topologies.lookup)
        before = meminfo_kib("MemAvailable")
        t0 = time.monotonic()
        lab = Lab(scenario, run_dir / f"origins-{n}", say=lambda *a: None)
        with lab:
            t1 = time.monotonic()
            services = lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
            t2 = time.monotonic()
            out = lab.net["c1"].cmd(f"for i in $(seq {n}); do curl -s -m 2 http://10.0.0.2/; done")
            served = {m.group(1) for m in re.finditer(r"served by (o\d+)", out)}
            t3 = time.monotonic()
            if len(served) < n:
                raise LabError(f"{n} origins: only {len(served)} answered through lb1")
            used = before - meminfo_kib("MemAvailable")
            pss = sum(pss_kib(s.pid) for s in services if s.pid)
            t4 = time.monotonic()
        t5 = time.monotonic()
        row = {"origins": n, "there": n // 2 if server is not None else 0, "build": t1 - t0, "ready": t2 - t1, "served": t3 - t2, "memory_mib": used / 1024,
               "pss_mib": pss / 1024, "teardown": t5 - t4}
        say(f"{n:>4} origins{f' ({n // 2} on the second server)' if server is not None else ''}: built {row['build']:.1f} s, ready {row['ready']:.1f} s, all served {row['served']:.2f} s, "
            f"{row['memory_mib']:.0f} MiB used ({row['pss_mib']:.0f} MiB of it in the services), torn down {row['teardown']:.1f} s")
        rows.append(row)
    return rows


def scale_summary(rows: list[dict[str, float]], total_kib: int | None = None, cores: int | None = None) -> list[str]:
    total_kib = meminfo_kib("MemTotal") if total_kib is None else total_kib
    cores = (os.cpu_count() or 1) if cores is None else cores
    split = any(r.get("there") for r in rows)
    lines = [f"{'origins':>8}{'there' if split else '':>7}{'build':>9}{'ready':>9}{'boot total':>12}{'memory used':>14}"
             f"{'in services':>13}{'teardown':>10}"]
    for r in rows:
        lines.append(f"{r['origins']:>8.0f}{r.get('there', 0) if split else '':>7}{r['build']:>8.1f}s{r['ready']:>8.1f}s"
                     f"{r['build'] + r['ready']:>11.1f}s{r['memory_mib']:>10.0f} MiB{r['pss_mib']:>9.0f} MiB{r['teardown']:>9.1f}s")
    if split:
        lines.append("'there': origins on the second server, each behind its own VXLAN tunnel and reached over ssh (on this "
                     "machine the second server is a namespace, so the memory and the cores are the same machine's)")
    if len(rows) >= 2:
        small, big = rows[0], rows[-1]
        span = big["origins"] - small["origins"]
        per_mib = (big["memory_mib"] - small["memory_mib"]) / span
        per_boot = (big["build"] + big["ready"] - small["build"] - small["ready"]) / span
        if per_mib > 0:
            room = (total_kib / 1024 * 0.8 - big["memory_mib"]) / per_mib + big["origins"]
            lines.append(f"each origin costs about {per_mib:.1f} MiB and {per_boot * 1000:.0f} ms of boot on this machine "
                         f"({cores} cores, {total_kib / 1024 / 1024:.1f} GiB): 80 % of its memory would hold about {room:.0f} "
                         f"origins, booting in about {small['build'] + small['ready'] + per_boot * (room - small['origins']):.0f} s")
        else:  # the machine's own memory moved more than the extra origins took: no per-origin cost to project from
            lines.append(f"each origin costs about {per_boot * 1000:.0f} ms of boot; the sizes are too close to tell its memory "
                         "from the machine's own changes (measure sizes further apart)")
        lines.append(f"median boot per origin over the sizes: {statistics.median((r['build'] + r['ready']) / r['origins'] for r in rows) * 1000:.0f} ms")
    return lines
