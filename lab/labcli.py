"""The Mininet CLI with lab verbs: break things by hand and look at what happens.

    mininet> fail o1            cut o1's link (or: fail o1-s1)
    mininet> stats              health and counters of every balancer and origin
    mininet> events 20          the last 20 events, explained
    mininet> load 20 30         every client sends 20 req/s for 30 s
    mininet> drain o2           every balancer sends o2 nothing new (undrain o2 gives it work again)
    mininet> c1 curl -s lb1     any Mininet command still works
"""
from __future__ import annotations

import time
from typing import Any

from mininet.cli import CLI

from lab.analysis.live_state import describe
from lab.core.faults import ACTIONS, NONE, Action, usage
from lab.events import read_events
from lab.net.faults import Faults
from lab.net.lab import Lab, LabError
from lab.net.roles import plan_load


class LabCLI(CLI):
    prompt = "halab> "

    def __init__(self, lab: Lab, **kwargs: Any) -> None:
        from mininet.log import setLogLevel

        self.lab = lab
        self.faults = Faults(lab)
        # The lab builds with Mininet's log at "error" (its build warnings mean nothing here); the CLI
        # prints a node command's output at "output" level, so without this "c1 curl ..." prints nothing.
        setLogLevel("output")
        try:
            super().__init__(lab.net, **kwargs)
        finally:
            setLogLevel("error")

    def _fault(self, action: str, line: str) -> None:
        target = line.strip() or None
        if ACTIONS[action].target != NONE and not target:
            print(f"usage: {usage(ACTIONS[action])}")
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
                result = self.lab.control(service, "stats", timeout=1.0)
            except (OSError, RuntimeError) as e:
                print(f"{key}: no answer ({e})")
                continue
            if "servers" in result and "requests" in result:
                print(f"{key}: {result['requests']} requests, {result['no_server']} with no server UP")
                for name, s in result["servers"].items():
                    print(f"    {name:<6} {s['state']:<9} picked {s['picked']:<6} active {s['active']:<4} errors {s['errors']}")
            else:
                print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in result.items()))

    def _set_server(self, line: str, **change: Any) -> None:
        server = line.strip()
        if not server:
            print("usage: drain SERVER   (e.g. drain o2)")
            return
        told = 0
        for key, service in sorted(self.lab.services.items()):
            if service.spec.service not in ("balancer", "l4") or service.state != "running":
                continue
            try:
                result = self.lab.control(service, "set_server", timeout=2.0, server=server, **change)
                print(f"{key}: {result}")
                told += 1
            except (OSError, RuntimeError) as e:  # a real daemon (HAProxy, nginx) has no such command
                print(f"{key}: cannot ({e})")
        if not told:
            print("no running halab balancer took the change")

    def do_drain(self, line: str) -> None:
        """drain SERVER: every balancer sends it nothing new; what it is already serving goes on (weight 0, as IPVS quiesces)."""
        self._set_server(line, drain=True)

    def do_undrain(self, line: str) -> None:
        """undrain SERVER: give a drained server new work again."""
        self._set_server(line, drain=False)

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


def _fault_verb(action: Action) -> Any:
    def verb(self: LabCLI, line: str) -> None:
        self._fault(action.name, "" if action.target == NONE else line)

    verb.__doc__ = usage(action)
    return verb


# One command per declared fault action (lab.core.faults); Mininet's CLI finds
# do_<verb> and shows the docstring for 'help <verb>'.
for _action in ACTIONS.values():
    setattr(LabCLI, f"do_{_action.verb}", _fault_verb(_action))
