"""The gateway's cache on loopback, in-process: what the origin was asked, counted (no Mininet, no root)."""
import asyncio

from lab.core.cache import CacheSettings
from lab.core.schema import as_config
from lab.events import EventLog
from lab.services.balancer import Balancer
from lab.services.proxy import ClientSide
from lab.services.runtime import Context

from . import configs


class Origin:
    """Answers with the headers set per path; counts requests per path; 304 to a matching If-None-Match."""

    def __init__(self, headers, delay=0.0):
        self.headers = headers  # path -> list of header lines
        self.delay = delay
        self.asked = []  # (method, path, If-None-Match)
        self.version = 1
        self.writers = []

    async def stop(self):
        """Down: no new connections, and the kept-alive ones cut."""
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def handle(self, reader, writer):
        self.writers.append(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                method, path, _ = lines[0].split(" ")
                fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                length = int(fields.get("content-length", 0))
                if length:
                    await reader.readexactly(length)
                self.asked.append((method, path, fields.get("if-none-match")))
                if self.delay:
                    await asyncio.sleep(self.delay)
                etag = f'"v{self.version}"'
                extra = "".join(f"{h}\r\n" for h in self.headers.get(path, []))
                if fields.get("if-none-match") == etag:
                    writer.write(f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n{extra}\r\n".encode())
                else:
                    body = f"{path} version {self.version}".encode()
                    writer.write(f"HTTP/1.1 200 OK\r\nETag: {etag}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]


async def gateway(tmp_path, port, **cache):
    cfg = configs.balancer(node="gw1", servers=[{"name": "o1", "address": "127.0.0.1", "port": port}], timeout_server=2.0,
                           timeout_connect=0.3, health={"inter": 60})
    cfg["cache"] = as_config(CacheSettings(enabled=True, **cache))
    balancer = Balancer(Context(cfg, EventLog(tmp_path / "gw.jsonl", "gw1", "balancer")))
    front = await asyncio.get_running_loop().create_server(lambda: ClientSide(balancer), "127.0.0.1", 0)
    return balancer, front, front.sockets[0].getsockname()[1]


async def get(port, path, *headers, method="GET", body=b""):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{h}\r\n" for h in headers)
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: site\r\n{extra}{length}Connection: close\r\n\r\n".encode() + body)
    answer = await asyncio.wait_for(reader.read(), 3)
    writer.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), fields, content


def test_a_hit_costs_the_origin_nothing_and_says_its_age(tmp_path):
    async def go():
        origin = Origin({"/a": ["Cache-Control: max-age=60"]})
        port = await origin.start()
        _, front, gw = await gateway(tmp_path, port)
        first = await get(gw, "/a")
        await asyncio.sleep(1.1)
        second = await get(gw, "/a")
        front.close()
        origin.server.close()
        return first, second, origin.asked

    (s1, h1, b1), (s2, h2, b2), asked = asyncio.run(go())
    assert (s1, s2, b1, b2) == (200, 200, b"/a version 1", b"/a version 1")
    assert h1["x-cache"] == "MISS from gw1" and h2["x-cache"] == "HIT from gw1" and int(h2["age"]) >= 1
    assert asked == [("GET", "/a", None)]


def test_a_stale_copy_is_validated_and_a_304_refreshes_it(tmp_path):
    async def go():
        origin = Origin({"/a": ["Cache-Control: max-age=1"]})
        port = await origin.start()
        _, front, gw = await gateway(tmp_path, port)
        await get(gw, "/a")
        await asyncio.sleep(1.2)
        again = await get(gw, "/a")
        mine = await get(gw, "/a", 'If-None-Match: "v1"')  # the client's own condition, answered from the copy
        front.close()
        origin.server.close()
        return again, mine, origin.asked

    (status, fields, body), (mine_status, _, mine_body), asked = asyncio.run(go())
    assert (status, body, fields["x-cache"]) == (200, b"/a version 1", "REVALIDATED from gw1")
    assert asked == [("GET", "/a", None), ("GET", "/a", '"v1"')]
    assert (mine_status, mine_body) == (304, b"")


def test_every_origin_down_and_the_site_still_up_within_stale_if_error(tmp_path):
    async def go():
        origin = Origin({"/a": ["Cache-Control: max-age=1, stale-if-error=60"], "/b": ["Cache-Control: max-age=1"]})
        port = await origin.start()
        _, front, gw = await gateway(tmp_path, port)
        await get(gw, "/a")
        await get(gw, "/b")
        await origin.stop()
        await asyncio.sleep(1.2)
        a, b = await get(gw, "/a"), await get(gw, "/b")
        front.close()
        return a, b

    (sa, ha, ba), (sb, hb, _) = asyncio.run(go())
    assert (sa, ba, ha["x-cache"]) == (200, b"/a version 1", "STALE from gw1")
    assert sb == 504 and hb["x-cache"] == "MISS from gw1"  # no stale-if-error: a stale copy is never served silently


def test_a_stampede_of_misses_is_one_origin_request(tmp_path):
    async def go():
        origin = Origin({"/hot": ["Cache-Control: max-age=60"]}, delay=0.3)
        port = await origin.start()
        _, front, gw = await gateway(tmp_path, port)
        answers = await asyncio.gather(*(get(gw, "/hot") for _ in range(20)))
        front.close()
        origin.server.close()
        return answers, origin.asked

    answers, asked = asyncio.run(go())
    assert all(status == 200 and body == b"/hot version 1" for status, _, body in answers)
    assert asked == [("GET", "/hot", None)]  # collapsed: nineteen waited for the first


def test_a_post_invalidates_and_authorization_is_not_shared(tmp_path):
    async def go():
        origin = Origin({"/a": ["Cache-Control: max-age=60"], "/me": ["Cache-Control: max-age=60"]})
        port = await origin.start()
        _, front, gw = await gateway(tmp_path, port)
        await get(gw, "/a")
        await get(gw, "/a", method="POST", body=b"x")
        await get(gw, "/a")
        await get(gw, "/me", "Authorization: Basic YTpi")
        theirs = await get(gw, "/me")
        front.close()
        origin.server.close()
        return origin.asked, theirs

    asked, (_, fields, _) = asyncio.run(go())
    assert [(m, p) for m, p, _ in asked] == [("GET", "/a"), ("POST", "/a"), ("GET", "/a"), ("GET", "/me"), ("GET", "/me")]
    assert fields["x-cache"] == "MISS from gw1"  # the answer to alice's Authorization was never stored for others
