"""The gateway under hostile clients, on loopback, in-process: smuggling refused, timeouts, streaming, 100-continue.

A recording origin parses every request with halab's own parser and keeps
what it saw, so each test can check what really reached the origin, not
only what the client was told.
"""
import asyncio
import json

import pytest

from lab.core.http1 import parse_request_head, request_framing
from lab.events import EventLog
from lab.services.balancer import Balancer
from lab.services.httpio import PeerClosed, discard_body, read_head
from lab.services.proxy import ClientSide
from lab.services.runtime import Context

from . import configs


class RecordingOrigin:
    """Answers 200 with the path and body size; ``seen`` holds (method, target, headers, body bytes) per request."""

    def __init__(self, interim=b""):
        self.seen = []
        self.interim = interim  # sent before every final answer (a 1xx)

    async def handle(self, reader, writer):
        try:
            while True:
                head = parse_request_head(await read_head(reader))
                size = await discard_body(reader, *request_framing(head))
                self.seen.append((head.method, head.target, dict(head.index), size))
                answer = f"{head.target} {size}".encode()
                writer.write(self.interim + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
        except (PeerClosed, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]


async def gateway(tmp_path, origin_port, **limits):
    cfg = configs.balancer(servers=[{"name": "o1", "address": "127.0.0.1", "port": origin_port}], timeout_server=2.0,
                           health={"inter": 60}, **limits)
    balancer = Balancer(Context(cfg, EventLog(tmp_path / "lb.jsonl", "lb1", "balancer")))
    front = await asyncio.get_running_loop().create_server(lambda: ClientSide(balancer), "127.0.0.1", 0)
    return balancer, front, front.sockets[0].getsockname()[1]


def events(tmp_path, kind):
    return [e for e in map(json.loads, (tmp_path / "lb.jsonl").read_text().splitlines()) if e["kind"] == kind]


async def exchange(port, data, wait=3.0, then=b"", pause=0.0):
    """Send ``data`` (and ``then`` after ``pause``), read until the gateway closes or ``wait`` passes; (answer, seconds)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = loop.time()
    writer.write(data)
    if then:
        await asyncio.sleep(pause)
        writer.write(then)
    try:
        answer = await asyncio.wait_for(reader.read(-1), wait)
    except asyncio.TimeoutError:
        answer = None  # still open: the failure these tests exist to catch
    writer.close()
    return answer, loop.time() - started


def scenario(tmp_path, data, limits=None, interim=b"", **kw):
    async def go():
        origin = RecordingOrigin(interim)
        port = await origin.start()
        balancer, front, front_port = await gateway(tmp_path, port, **(limits or {}))
        answer, took = await exchange(front_port, data, **kw)
        await asyncio.sleep(0.05)
        front.close()
        origin.server.close()
        return answer, took, origin.seen, balancer
    return asyncio.run(go())


@pytest.mark.parametrize("named", ["Content-Length", "Transfer-Encoding", "Host", "content-length, close"])
def test_connection_naming_a_framing_header_is_refused_and_nothing_reaches_the_origin(tmp_path, named):
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    data = (b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: %s\r\nContent-Length: %d\r\n\r\n" % (named.encode(), len(smuggled))) + smuggled
    answer, took, seen, _ = scenario(tmp_path, data)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"request smuggling" in answer and took < 1
    assert seen == []
    assert events(tmp_path, "request_rejected")[0]["reason"] == "smuggling"


@pytest.mark.parametrize("data, status", [
    (b"GET / HTTP/1.1\nHost: x\n\n", b"400"),  # bare LF: refused at once, not left hanging
    (b"GET /\r\n", b"400"),  # HTTP/0.9
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"505"),  # an HTTP/2 preface
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551621\r\n\r\n", b"413"),  # 2^64 + 5
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(102)) + b"\r\n", b"431"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000, b"431"),  # a head that never ends, past max_head
    (b"CONNECT origin:443 HTTP/1.1\r\nHost: origin:443\r\n\r\n", b"405"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx", b"417"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", b"501"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
])
def test_every_malformed_request_gets_an_answer_at_once_and_a_close(tmp_path, data, status):
    answer, took, seen, _ = scenario(tmp_path, data)
    assert answer is not None and answer.split(b" ")[1] == status, answer
    assert took < 1.0, f"answered after {took:.2f} s"
    assert seen == []


def test_a_slowloris_client_is_cut_at_the_head_timeout_while_others_are_served(tmp_path):
    async def go():
        origin = RecordingOrigin()
        port = await origin.start()
        _, front, front_port = await gateway(tmp_path, port, timeout_http_request=0.5)
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", front_port)
        started = loop.time()

        async def trickle():
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                if writer.is_closing():
                    return
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        trickler = asyncio.create_task(trickle())
        served = []
        for _ in range(5):  # meanwhile, normal clients
            answer, _ = await exchange(front_port, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            served.append(answer.split(b" ")[1])
        answer = await asyncio.wait_for(reader.read(-1), 3)
        cut_after = loop.time() - started
        trickler.cancel()
        front.close()
        origin.server.close()
        return answer, cut_after, served
    answer, cut_after, served = asyncio.run(go())
    assert answer.startswith(b"HTTP/1.1 408 ") and 0.45 <= cut_after < 1.0, (answer, cut_after)
    assert served == [b"200"] * 5
    assert events(tmp_path, "request_rejected")[0]["reason"] == "head_timeout"


def test_an_idle_kept_alive_connection_is_closed_quietly(tmp_path):
    answer, took, seen, balancer = scenario(tmp_path, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", {"timeout_keep_alive": 0.3})
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1 and 0.25 < took < 1.0
    assert balancer.idle_closed == 1 and events(tmp_path, "request_rejected") == []


def test_a_client_that_connects_and_says_nothing_is_closed_without_a_408(tmp_path):
    answer, took, _, balancer = scenario(tmp_path, b"", {"timeout_http_request": 0.3})
    assert answer == b"" and took < 1.0 and balancer.idle_closed == 1


def test_a_chunked_upload_is_streamed_to_the_origin_whole(tmp_path):
    chunks = b"".join(b"%x;note=1\r\n%s\r\n" % (n, b"z" * n) for n in (1, 1000, 70000)) + b"0\r\nX-Trailer: t\r\n\r\n"
    answer, _, seen, _ = scenario(tmp_path, b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"/up 71001")
    assert seen[0][3] == 71001 and seen[0][2]["transfer-encoding"] == ["chunked"]


def test_a_large_body_is_streamed_in_pieces_and_the_next_request_follows(tmp_path):
    body = b"b" * 300_000
    head = b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    answer, _, seen, _ = scenario(tmp_path, head + body[:1000], then=body[1000:] + b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                  pause=0.2)
    assert answer.count(b"HTTP/1.1 200 ") == 2 and b"/big 300000" in answer and answer.endswith(b"/next 0")
    assert [s[1] for s in seen] == ["/big", "/next"] and seen[0][3] == 300_000


def test_expect_100_continue_gets_a_100_before_the_body_and_the_origin_never_sees_expect(tmp_path):
    async def go():
        origin = RecordingOrigin(interim=b"HTTP/1.1 100 Continue\r\n\r\n")  # an origin that also says it: dropped
        port = await origin.start()
        _, front, front_port = await gateway(tmp_path, port)
        reader, writer = await asyncio.open_connection("127.0.0.1", front_port)
        writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        writer.write(b"hello")
        rest = await asyncio.wait_for(reader.read(-1), 2)
        front.close()
        origin.server.close()
        return first, rest, origin.seen
    first, rest, seen = asyncio.run(go())
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert rest.startswith(b"HTTP/1.1 200 ") and b"100 Continue" not in rest and rest.endswith(b"/e 5")
    assert "expect" not in seen[0][2]


def test_http_1_0_without_host_gets_the_chosen_origin_as_host(tmp_path):
    answer, _, seen, _ = scenario(tmp_path, b"GET /old HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") or answer.startswith(b"HTTP/1.0 200 ")
    assert seen[0][2]["host"][0].startswith("127.0.0.1:")


def test_a_stalled_body_is_cut_at_the_client_timeout_and_the_origin_is_let_go(tmp_path):
    data = b"PUT /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n" + b"s" * 100_000
    answer, took, _, balancer = scenario(tmp_path, data, {"timeout_client": 0.4})
    assert answer.startswith(b"HTTP/1.1 408 ") and 0.35 < took < 1.5
    assert balancer.in_flight == 0 and balancer.pool["o1"].active == 0 and balancer.errors["o1"] == 0  # not the origin's fault
    assert events(tmp_path, "request_aborted")[0]["reason"] == "body_timeout"


def test_max_body_is_413_before_the_body_is_read(tmp_path):
    answer, took, seen, _ = scenario(tmp_path, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n",
                                     {"max_body": 1000})
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer and took < 1 and seen == []


def test_a_chunked_body_past_max_body_is_cut_off(tmp_path):
    data = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"q" * 1024 + b"\r\n" + b"400\r\n" + b"q" * 1024 + b"\r\n"
    answer, _, _, _ = scenario(tmp_path, data, {"max_body": 1500})
    assert answer is not None and (answer.startswith(b"HTTP/1.1 413 ") or answer == b"")  # an answer, or a cut if the origin answered first
    assert events(tmp_path, "request_rejected")[0]["reason"] == "body_too_large"


def test_a_pipelined_smuggled_tail_is_never_forwarded(tmp_path):
    data = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\nX: "
    answer, took, seen, _ = scenario(tmp_path, data, {"timeout_http_request": 0.4})
    assert answer.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in answer and took < 1.5
    assert [s[1] for s in seen] == ["/a"]


def test_a_streamed_body_is_replayed_whole_on_another_server_when_the_first_refuses(tmp_path):
    async def go():
        origin = RecordingOrigin()
        port = await origin.start()
        cfg = configs.balancer(retries=1, health={"inter": 60}, timeout_server=2.0,
                               servers=[{"name": "dead", "address": "127.0.0.1", "port": 1}, {"name": "o1", "address": "127.0.0.1", "port": port}])
        balancer = Balancer(Context(cfg, EventLog(tmp_path / "lb.jsonl", "lb1", "balancer")))
        front = await asyncio.get_running_loop().create_server(lambda: ClientSide(balancer), "127.0.0.1", 0)
        body = b"r" * 200_000
        answer, _ = await exchange(front.sockets[0].getsockname()[1],
                                   b"PUT /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        front.close()
        origin.server.close()
        return answer, origin.seen, balancer
    answer, seen, balancer = asyncio.run(go())
    assert answer.startswith(b"HTTP/1.1 200 ") and b"X-Retries: 1" in answer and seen[0][3] == 200_000 and balancer.retried == 1


def test_a_client_that_leaves_mid_body_frees_the_server(tmp_path):
    async def go():
        origin = RecordingOrigin()
        port = await origin.start()
        balancer, front, front_port = await gateway(tmp_path, port)
        reader, writer = await asyncio.open_connection("127.0.0.1", front_port)
        writer.write(b"PUT /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"g" * 100_000)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await asyncio.sleep(0.2)
        front.close()
        origin.server.close()
        return balancer
    balancer = asyncio.run(go())
    assert balancer.in_flight == 0 and balancer.pool["o1"].active == 0 and balancer.client_aborts == 1
    assert events(tmp_path, "request_aborted")[0]["reason"] == "client_closed" and events(tmp_path, "request_failed") == []


@pytest.mark.parametrize("trust, reaches", [(False, None), (True, ["evil.example"])])
def test_a_clients_x_forwarded_host_reaches_the_origin_only_when_trusted(tmp_path, trust, reaches):
    request = (b"GET /page HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Host: evil.example\r\n\r\n"
               b"GET /plain HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
    answer, _, seen, _ = scenario(tmp_path, request, limits={"trust_forwarded_host": trust})
    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert [s[2].get("x-forwarded-host") for s in seen] == [reaches, None]
    assert [s[2]["host"] for s in seen] == [["shop.example"]] * 2 and all(s[2]["x-forwarded-for"] == ["127.0.0.1"] for s in seen)
