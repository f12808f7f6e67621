"""The data path's seams (lab.services.exchange): another Upstreams, an observer, the exchange's state."""
import pytest

from lab.core.balancing import Server
from lab.services.exchange import DONE, STATES

from .test_proxy_loopback import ANSWERS, GET, run, through_balancer, upstream


class Recorder:
    """An observer as a cache would be one: sees the answer's head, body and end."""

    def __init__(self):
        self.calls = []
        self.body = b""

    def on_head(self, x, status, head):
        self.calls.append(("head", status, head.split(b"\r\n")[0]))

    def on_body(self, x, data):
        self.body += data

    def on_end(self, x, complete):
        self.calls.append(("end", complete, x.state))
        self.x = x


@pytest.mark.parametrize("kind", ["length", "chunked", "close"])
def test_an_observer_sees_exactly_the_answer_the_client_gets(tmp_path, kind):
    recorder = Recorder()

    async def go():
        server, port = await upstream(kind)
        answer, _ = await through_balancer(tmp_path, [{"name": "up", "address": "127.0.0.1", "port": port}], GET,
                                           setup=lambda b: setattr(b, "observe", lambda x: recorder))
        server.close()
        return answer
    answer = run(go())
    assert recorder.calls[0] == ("head", 200, ANSWERS[kind].split(b"\r\n")[0])
    assert recorder.calls[-1][:2] == ("end", True)
    assert answer.endswith(recorder.body) and recorder.body == ANSWERS[kind].split(b"\r\n\r\n", 1)[1]


def test_an_exchange_ends_done_and_the_observer_saw_its_state_move_on(tmp_path):
    recorder = Recorder()

    async def go():
        server, port = await upstream("length")
        await through_balancer(tmp_path, [{"name": "up", "address": "127.0.0.1", "port": port}], GET,
                               setup=lambda b: setattr(b, "observe", lambda x: recorder))
        server.close()
    run(go())
    assert recorder.calls[-1] == ("end", True, "answering")  # seen before the gateway closes the books on it
    assert recorder.x.state == DONE
    assert STATES[0] == "received" and STATES[-1] == DONE


class FixedUpstreams:
    """Another answer to 'where does this go': one named host, as a forward proxy resolving the request's host would."""

    def __init__(self, port):
        self.host = Server("origin.example", "127.0.0.1", port)
        self.released = []

    def pick(self, x):
        return None if self.host.name in x.tried else self.host

    def release(self, x, ok):
        self.released.append((x.server.name, ok))


def test_a_gateway_can_send_exchanges_where_another_upstreams_says(tmp_path):
    fixed = {}

    async def go():
        server, port = await upstream("length")
        fixed["u"] = FixedUpstreams(port)
        answer, _ = await through_balancer(tmp_path, [], GET, setup=lambda b: setattr(b, "upstreams", fixed["u"]))  # no pool at all
        server.close()
        return answer
    answer = run(go())
    assert answer.startswith(b"HTTP/1.1 200") and b"X-Upstream: origin.example" in answer
    assert fixed["u"].released == [("origin.example", True)]
