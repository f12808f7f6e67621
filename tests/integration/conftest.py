"""Integration tests build real Mininet networks: root only, one at a time, always cleaned up.

Without root they are skipped, unless HALAB_REQUIRE_INTEGRATION=1 (CI sets
it), in which case a skip would hide a broken tier, so it fails instead.
"""
import os
import shutil

import pytest

from lab.events import check, read_events

DEMO = "exercises/01-health-checks-and-failover/scenario.toml"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (sudo make test)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "Mininet is not importable (apt install mininet)"
    for tool in ("brctl", "mnexec", "ip", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(autouse=True, scope="session")
def integration_ready():
    why = _missing()
    if why:
        if os.environ.get("HALAB_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"integration tests required but cannot run: {why}")
        pytest.skip(why)


def root_interfaces() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout, what="a condition"):
    """Poll ``condition()`` until it returns something true; return that (fail after ``timeout`` s)."""
    import time

    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.time() > deadline:
            pytest.fail(f"no {what} within {timeout:g} s")
        time.sleep(0.05)


def wait_event(run_dir, predicate, timeout, what="an event"):
    """Poll a run's event log until an event satisfies ``predicate``; return it (fail after ``timeout`` s)."""
    import time

    from lab.events import read_events

    deadline = time.time() + timeout
    while True:
        found = next((e for e in read_events(run_dir) if predicate(e)), None)
        if found is not None:
            return found
        if time.time() > deadline:
            pytest.fail(f"no {what} within {timeout:g} s")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def shipped(tmp_path_factory):
    """Run a shipped scenario file once per test session and share its run directory.

    Several test files judge the same lesson scenario from different sides
    (its own [expect] checks, VRRP timing, ...); one network run serves them
    all, which keeps the suite short.
    """
    from lab.runner import load_scenario, run

    runs = {}

    def get(path):
        if path not in runs:
            name = path.replace("/", "_").removesuffix(".toml")
            runs[path] = run(load_scenario(path), tmp_path_factory.mktemp(name) / "run", live=False, say=lambda *a: None)
            # every event the network wrote keeps to its declaration (lab/event_kinds.py)
            problems = sorted({p for e in read_events(runs[path]) for p in check(e)})
            assert not problems, f"{path}: events off their declaration: {problems[:10]}"
        return runs[path]

    return get
