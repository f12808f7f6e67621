"""The balancer's data path on loopback, in-process: framings, errors, retries (no Mininet, no root)."""
import asyncio

from lab.events import EventLog
from lab.services.balancer import Balancer
from lab.services.proxy import ClientSide
from lab.services.runtime import Context

from . import configs

ANSWERS = {
    "close": b"HTTP/1.0 200 OK\r\nX-Served-By: up\r\n\r\nhello until close",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
}


async def upstream(kind):
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ANSWERS[kind])
        await writer.drain()
        if kind == "close":
            writer.close()
            return
        await asyncio.sleep(5)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def through_balancer(tmp_path, servers, request, retries=0, setup=None):
    ctx = Context(configs.balancer(servers=servers, retries=retries, timeout_connect=0.5, timeout_server=1.0, health={"inter": 60}),
                  EventLog(tmp_path / "lb.jsonl", "lb1", "balancer"))
    balancer = Balancer(ctx)
    if setup is not None:  # a test plugs something into a seam (lab.services.exchange)
        setup(balancer)
    front = await asyncio.get_running_loop().create_server(lambda: ClientSide(balancer), "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 3)  # until the balancer closes, or 3 s
    front.close()
    return answer, balancer


def run(coro):
    return asyncio.run(coro)


GET = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_until_close_answer_is_relayed_and_the_client_connection_closed(tmp_path):
    async def go():
        server, port = await upstream("close")
        answer, _ = await through_balancer(tmp_path, [{"name": "up", "address": "127.0.0.1", "port": port}],
                                           b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive asked, yet must close
        server.close()
        return answer
    answer = run(go())
    assert answer.endswith(b"hello until close") and b"X-Upstream: up" in answer and b"Via: 1.1 lb1" in answer


def test_chunked_answer_passes_through_intact(tmp_path):
    async def go():
        server, port = await upstream("chunked")
        answer, _ = await through_balancer(tmp_path, [{"name": "up", "address": "127.0.0.1", "port": port}], GET)
        server.close()
        return answer
    answer = run(go())
    assert b"Transfer-Encoding: chunked" in answer and answer.endswith(b"5\r\nhello\r\n0\r\n\r\n")


def test_refused_connection_is_a_502_that_names_the_server_or_a_retry_elsewhere(tmp_path):
    async def go(retries):
        server, port = await upstream("length")
        dead = {"name": "dead", "address": "127.0.0.1", "port": 1}  # nothing listens on port 1
        answer, balancer = await through_balancer(tmp_path, [dead, {"name": "up", "address": "127.0.0.1", "port": port}], GET, retries)
        server.close()
        return answer, balancer
    answer, balancer = run(go(0))
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway") and b"cannot connect to dead" in answer and b"X-Upstream: dead" in answer
    answer, balancer = run(go(1))
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"X-Retries: 1" in answer and balancer.retried == 1


async def echo_upstream():
    """Answers every request on a connection with its path and body; ``/stall`` is never answered."""
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1]
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                if path == b"/stall":
                    await asyncio.sleep(10)
                answer = path + b" " + body
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def balancer_front(tmp_path, port):
    ctx = Context(configs.balancer(servers=[{"name": "up", "address": "127.0.0.1", "port": port}], timeout_server=1.0,
                                   health={"inter": 60}), EventLog(tmp_path / "lb.jsonl", "lb1", "balancer"))
    balancer = Balancer(ctx)
    front = await asyncio.get_running_loop().create_server(lambda: ClientSide(balancer), "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
    return front, reader, writer


async def read_answer(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return head, await reader.readexactly(length)


def test_server_timeout_counts_from_each_request_on_a_kept_alive_connection(tmp_path):
    # The balancer keeps one lazily re-armed timer per upstream connection. A request sent
    # 0.6 s after the previous one must still get its full timeout_server (1.0 s), not the
    # 0.4 s left on the timer armed for the first request. The 0.6 s pass on a fake clock:
    # the loop's time jumps ahead, and the timer armed for the first request fires early.
    async def go():
        server, port = await echo_upstream()
        front, reader, writer = await balancer_front(tmp_path, port)
        writer.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        _, body = await read_answer(reader)
        loop = asyncio.get_running_loop()
        real, skew = loop.time, [0.0]
        loop.time = lambda: real() + skew[0]  # type: ignore[method-assign]
        skew[0] += 0.6
        sent = loop.time()
        writer.write(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await asyncio.wait_for(read_answer(reader), 3)
        waited = loop.time() - sent
        front.close()
        server.close()
        return body, head, waited
    body, head, waited = run(go())
    assert body == b"/first "
    assert head.startswith(b"HTTP/1.1 504") and b"X-Upstream: up" in head
    assert 0.95 <= waited <= 1.5, f"504 after {waited:.2f} s; timeout_server is 1.0 s"


def test_pipelined_requests_and_a_body_in_pieces_are_answered_in_order(tmp_path):
    async def go():
        server, port = await echo_upstream()
        front, reader, writer = await balancer_front(tmp_path, port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123")
        answers = [await asyncio.wait_for(read_answer(reader), 3) for _ in range(2)]
        writer.write(b"456789")  # the rest of the POST body, later
        answers.append(await asyncio.wait_for(read_answer(reader), 3))
        front.close()
        server.close()
        return [body for _, body in answers]
    assert run(go()) == [b"/a ", b"/b ", b"/c 0123456789"]
