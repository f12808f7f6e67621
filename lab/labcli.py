"""The Mininet CLI with lab verbs: break things by hand and look at what happens.

    mininet> fail o1            cut o1's link (or: fail o1-s1)
    mininet> stats              health and counters of every balancer and origin
    mininet> events 20          the last 20 events, explained
    mininet> load 20 30         every client sends 20 req/s for 30 s
    mininet> c1 curl -s lb1     any Mininet command still works
"""
from __future__ import annotations

import time
from typing import Any

from mininet.cli import CLI

from lab.analysis.live_state import describe
from lab.events import read_events
from lab.net.faults import Faults
from lab.net.lab import Lab, LabError
from lab.net.roles import plan_load
from lab.services.runtime import call


class LabCLI(CLI):
    prompt = "halab> "

    def __init__(self, lab: Lab, **kwargs: Any) -> None:
        self.lab = lab
        self.faults = Faults(lab)
        super().__init__(lab.net, **kwargs)

    def _fault(self, action: str, line: str) -> None:
        target = line.strip() or None
        if action != "restore" and not target:
            print(f"usage: {action} NODE-or-LINK")
            return
        try:
            for change in self.faults.apply(action, target, "by hand"):
                print(f"done: {change.describe()}")
        except LabError as e:
            print(f"error: {e}")

    def do_broken(self, line: str) -> None:
        """broken: list the faults in force."""
        print(", ".join(self.faults.broken()) or "nothing is broken")

    def do_stats(self, line: str) -> None:
        """stats: counters and health from every running service's control socket."""
        for key, service in sorted(self.lab.services.items()):
            if service.state != "running":
                print(f"{key}: {service.state}")
                continue
            try:
                result = call(service.spec.config["control"], "stats", timeout=1.0)
            except (OSError, RuntimeError) as e:
                print(f"{key}: no answer ({e})")
                continue
            if "servers" in result:
                print(f"{key}: {result['requests']} requests, {result['no_server']} with no server UP")
                for name, s in result["servers"].items():
                    print(f"    {name:<6} {s['state']:<9} picked {s['picked']:<6} active {s['active']:<4} errors {s['errors']}")
            else:
                print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in result.items()))

    def do_events(self, line: str) -> None:
        """events [N]: the last N events (default 15), oldest first."""
        n = int(line) if line.strip().isdigit() else 15
        # Per-request records would drown the story; 'stats' has their counts.
        events = [e for e in read_events(self.lab.run_dir) if e["kind"] not in ("request_finished", "request_routed", "service_ready",
                                                                                        "vrrp_heartbeat", "balancer_load")]
        t0 = events[0]["t"] if events else 0
        for e in events[-n:]:
            print(f"{e['t'] - t0:8.2f}s  {describe(e)}")

    def do_load(self, line: str) -> None:
        """load RATE SECONDS: every client sends RATE requests/s for SECONDS, in the background."""
        parts = line.split()
        try:
            rate, seconds = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            print("usage: load RATE SECONDS   (e.g. load 20 30)")
            return
        import dataclasses

        scenario = dataclasses.replace(self.lab.scenario, duration=seconds, load=dataclasses.replace(self.lab.scenario.load, rate=rate))
        specs = plan_load(scenario, self.lab.addresses, self.lab.run_dir, time.time() + 0.5)
        for spec in specs:
            if spec.key in self.lab.services and self.lab.services[spec.key].proc and self.lab.services[spec.key].proc.poll() is None:
                print(f"{spec.key} is still sending; wait for it to finish")
                return
        for spec in specs:
            self.lab.start(spec)
        print(f"{len(specs)} clients sending {rate:g} req/s each for {seconds:g} s; watch with 'stats' and 'events'")


# verb -> (fault action, help). One table instead of ten look-alike methods;
# Mininet's CLI finds do_<verb> and shows the docstring for 'help <verb>'.
FAULT_VERBS = {
    "fail": ("link_down", "fail LINK: take a link down (LINK is 'a-b' or a node with one link)."),
    "heal": ("link_up", "heal LINK: bring a link back up."),
    "crash": ("crash", "crash NODE: SIGKILL the halab services on NODE."),
    "restart": ("restart", "restart NODE: start a crashed node's services again."),
    "pause": ("pause", "pause NODE: SIGSTOP its services (the kernel still answers ping and TCP handshakes)."),
    "resume": ("resume", "resume NODE: SIGCONT a paused node's services."),
    "poweroff": ("poweroff", "poweroff NODE: the whole machine dies: services killed, every interface down."),
    "poweron": ("poweron", "poweron NODE: boot a powered-off node again (interfaces up, services started)."),
    "partition": ("partition", "partition A/B: A and B drop each other's packets; both still reach everyone else."),
    "unpartition": ("unpartition", "unpartition A/B: let A and B talk again."),
    "restore": ("restore", "restore: undo every fault in force."),
}


def _fault_verb(action: str, doc: str) -> Any:
    def verb(self: LabCLI, line: str) -> None:
        self._fault(action, "" if action == "restore" else line)

    verb.__doc__ = doc
    return verb


for _name, (_action, _doc) in FAULT_VERBS.items():
    setattr(LabCLI, f"do_{_name}", _fault_verb(_action, _doc))
