"""Service loops survive the faults halab injects, and a loop that dies takes its service down visibly."""
import asyncio
import errno
import json

import pytest

from lab.core.vrrp import SEND_ADVERT, Action, Vrrp, VrrpSettings
from lab.events import EventLog
from lab.services.runtime import TRANSIENT_ERRNOS, Context, transient
from lab.services.vrrp import Speaker

from . import configs


class FlakySocket:
    """A raw socket whose cable is pulled while ``error`` is set."""

    def __init__(self):
        self.error = None
        self.sent = []

    def sendto(self, data, addr):
        if self.error is not None:
            raise OSError(self.error, "pulled cable")
        self.sent.append(data)


def speaker(tmp_path):
    s = Speaker.__new__(Speaker)  # no raw socket, no /sys: the send path alone
    s.ctx = Context({"node": "gw1"}, EventLog(tmp_path / "vrrp.jsonl", "gw1", "vrrp"))
    s.vip, s.address = "10.0.0.100", "10.0.0.2"
    s.machine = Vrrp(VrrpSettings(51, 200, 0.1, True, s.address))
    s.adverts_sent = s.send_failures = 0
    s.sock = FlakySocket()
    return s


def events(tmp_path):
    return [json.loads(line) for line in (tmp_path / "vrrp.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("code", sorted(TRANSIENT_ERRNOS))
def test_an_advert_that_cannot_be_sent_is_an_event_and_sending_resumes(tmp_path, code):
    s = speaker(tmp_path)
    s.sock.error = code
    for _ in range(3):
        asyncio.run(s.perform([Action(SEND_ADVERT, priority=200)]))
    s.sock.error = None
    asyncio.run(s.perform([Action(SEND_ADVERT, priority=200)]))
    kinds = [e["kind"] for e in events(tmp_path)]
    assert kinds == ["advert_send_failed", "advert_send_recovered"]  # one event per streak, not one per advert
    assert events(tmp_path)[1]["lost"] == 3 and s.adverts_sent == 1 and len(s.sock.sent) == 1


def test_an_unexpected_send_error_is_not_swallowed(tmp_path):
    s = speaker(tmp_path)
    s.sock.error = errno.EBADF
    with pytest.raises(OSError):
        s.send_advert(200)
    assert not transient(OSError(errno.EBADF, "x")) and transient(OSError(errno.ENETUNREACH, "x"))


def test_a_supervised_loop_that_dies_stops_the_service_with_its_traceback(tmp_path):
    async def go():
        ctx = Context({"node": "lb1"}, EventLog(tmp_path / "svc.jsonl", "lb1", "balancer"))

        async def broken():
            await asyncio.sleep(0.01)
            raise KeyError("bug")

        async def forever():
            await asyncio.sleep(60)

        ctx.spawn(broken(), "check o1")
        healthy = ctx.spawn(forever(), "report_load")
        await asyncio.wait_for(ctx.stopping.wait(), 2)
        healthy.cancel()
        await asyncio.sleep(0)
        return ctx
    ctx = asyncio.run(go())
    failed = [json.loads(line) for line in (tmp_path / "svc.jsonl").read_text().splitlines()]
    assert ctx.failed and [e["kind"] for e in failed] == ["service_failed"]
    assert failed[0]["task"] == "check o1" and "KeyError" in failed[0]["error"] and "raise KeyError" in failed[0]["traceback"]


@pytest.mark.parametrize("code", sorted(TRANSIENT_ERRNOS))
def test_a_health_probe_that_meets_a_pulled_cable_is_a_failed_probe_and_the_loop_goes_on(tmp_path, code):
    from lab.services.balancer import Balancer

    async def go():
        ctx = Context(configs.balancer(servers=[{"name": "o1", "address": "127.0.0.1", "port": 1}],
                                       health={"inter": 0.05, "rise": 1, "fall": 1}), EventLog(tmp_path / "lb.jsonl", "lb1", "balancer"))
        balancer = Balancer(ctx)
        calls = []

        async def failing(address, port):
            calls.append(1)
            if len(calls) <= 2:
                raise OSError(code, "pulled cable")
            return True, "HTTP 200"

        balancer.checker.probe = failing
        task = ctx.spawn(balancer.checker.loop(balancer.checker.targets[0], 0), "check o1")
        await asyncio.sleep(0.4)
        task.cancel()
        return balancer, ctx
    balancer, ctx = asyncio.run(go())
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "lb.jsonl").read_text().splitlines()]
    assert not ctx.failed and "service_failed" not in kinds
    assert [k for k in kinds if k == "health_changed"] == ["health_changed", "health_changed"]  # DOWN on the errors, UP again after
