"""The forward proxy's data path on loopback, in-process: what the origin sees, tunnels, refusals (no Mininet, no root)."""
import asyncio
import base64
import json

import pytest

from lab.core.forward import ProxySettings
from lab.core.schema import as_config
from lab.events import EventLog
from lab.services.forward_proxy import ForwardProxy, ProxyClient
from lab.services.runtime import Context

OPEN = "http_access allow all"  # tests on loopback choose their own ports; the stock rules allow CONNECT to 443 only


def proxy_config(**settings):
    """A proxy's JSON config as plan() makes it (lab.services.forward_proxy)."""
    s = ProxySettings(**settings)
    return {"node": "fp1", **as_config(s), "impl": "halab", "hosts": {"origin": "127.0.0.1"}, "bind": ["127.0.0.1"]}


async def recording_origin(seen, extra=b""):
    """An origin that answers every request (``extra``: more header lines) and keeps the heads it received."""
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(head.decode())
                writer.write(b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: 2\r\n\r\nhi")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def echo_server():
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def start_proxy(tmp_path, **settings):
    proxy = ForwardProxy(Context(proxy_config(**settings), EventLog(tmp_path / "fp1.jsonl", "fp1", "proxy")))
    front = await asyncio.get_running_loop().create_server(lambda: ProxyClient(proxy), "127.0.0.1", 0)
    return proxy, front, front.sockets[0].getsockname()[1]


async def read_answer(reader):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    return head.decode(), await reader.readexactly(length)


async def tunnels_closed(proxy, within=1.0):
    """Wait until the proxy has closed every tunnel (their ends close a moment after the client's)."""
    for _ in range(int(within / 0.01)):
        if not proxy.tunnels:
            return
        await asyncio.sleep(0.01)


def events(tmp_path, kind):
    return [e for e in map(json.loads, (tmp_path / "fp1.jsonl").read_text().splitlines()) if e["kind"] == kind]


def test_plain_requests_reach_the_origin_rewritten_and_the_client_stays_kept_alive(tmp_path):
    seen = []

    async def go():
        origin, port = await recording_origin(seen)
        proxy, front, proxy_port = await start_proxy(tmp_path)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        answers = []
        for path in ("/a", "/b"):  # two requests on one client connection
            writer.write(f"GET http://origin:{port}{path} HTTP/1.1\r\nHost: origin:{port}\r\nProxy-Authorization: Basic eDp5\r\n"
                         "Proxy-Connection: keep-alive\r\n\r\n".encode())
            answers.append(await read_answer(reader))
        writer.close()
        front.close()
        origin.close()
        return answers, proxy

    answers, proxy = asyncio.run(go())
    assert [body for _, body in answers] == [b"hi", b"hi"]
    assert all("Via: 1.1 fp1 (halab)" in head for head, _ in answers)  # Via on the way back too
    assert [h.split("\r\n")[0] for h in seen] == ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]  # origin form
    assert all("X-Forwarded-For: 127.0.0.1" in h and "Via: 1.1 fp1 (halab)" in h for h in seen)
    assert not any("proxy-" in h.lower() for h in seen)  # the proxy's credentials never reach an origin
    logged = events(tmp_path, "proxy_request")
    assert [(e["status"], e["result"], e["url"].rsplit("/", 1)[1]) for e in logged] == [(200, "TCP_MISS", "a"), (200, "TCP_MISS", "b")]
    assert proxy.statistics()["requests"] == 2


def test_connect_relays_bytes_blindly_and_logs_only_host_port_and_counts(tmp_path):
    async def go():
        echo, port = await echo_server()
        proxy, front, proxy_port = await start_proxy(tmp_path, acl=OPEN, stock=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        writer.write(f"CONNECT origin:{port} HTTP/1.1\r\nHost: origin:{port}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        payload = bytes(range(256)) * 400  # not HTTP at all: the tunnel does not care
        writer.write(payload)
        back = await asyncio.wait_for(reader.readexactly(len(payload)), 3)
        open_now = proxy.statistics()["tunnels_open"]
        writer.close()
        await tunnels_closed(proxy)
        front.close()
        echo.close()
        return head, back == payload, open_now, len(payload)

    head, same, open_now, size = asyncio.run(go())
    assert head.startswith(b"HTTP/1.1 200 Connection established") and same and open_now == 1
    (tunnel,) = events(tmp_path, "proxy_request")
    assert (tunnel["method"], tunnel["result"], tunnel["status"]) == ("CONNECT", "TCP_TUNNEL", 200)
    assert tunnel["url"].startswith("origin:") and tunnel["up"] == size and tunnel["down"] == size


def test_an_idle_tunnel_is_closed_after_timeout_tunnel(tmp_path):
    async def go():
        echo, port = await echo_server()
        proxy, front, proxy_port = await start_proxy(tmp_path, acl=OPEN, stock=False, timeout_tunnel=0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        writer.write(f"CONNECT origin:{port} HTTP/1.1\r\nHost: origin:{port}\r\n\r\n".encode())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        started = asyncio.get_running_loop().time()
        rest = await asyncio.wait_for(reader.read(), 3)  # EOF when the proxy gives up on the silent tunnel
        took = asyncio.get_running_loop().time() - started
        front.close()
        echo.close()
        return rest, took

    rest, took = asyncio.run(go())
    assert rest == b"" and 0.15 < took < 1.5
    assert events(tmp_path, "proxy_request")[0]["reason"] == "idle"


def test_refusals_name_the_rule_ask_for_credentials_and_forward_nothing(tmp_path):
    seen = []
    rules = "acl blocked dstdomain origin\nhttp_access deny blocked\nacl login proxy_auth REQUIRED\nhttp_access allow login"

    async def go():
        origin, port = await recording_origin(seen)
        proxy, front, proxy_port = await start_proxy(tmp_path, acl=rules, stock=False, users={"alice": "pw"})
        out = []
        for request in (f"GET http://origin:{port}/ HTTP/1.1\r\nHost: origin:{port}\r\n\r\n",
                        f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
                        f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nProxy-Authorization: Basic "
                        f"{base64.b64encode(b'alice:pw').decode()}\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            writer.write(request.encode())
            out.append(await read_answer(reader))
            writer.close()
        front.close()
        origin.close()
        return out

    (denied, _), (login, _), (allowed, body) = asyncio.run(go())
    assert denied.startswith("HTTP/1.1 403 ")
    assert login.startswith("HTTP/1.1 407 ") and 'Proxy-Authenticate: Basic realm="halab proxy"' in login
    assert allowed.startswith("HTTP/1.1 200 ") and body == b"hi"
    assert len(seen) == 1  # only the authenticated request reached the origin
    logged = events(tmp_path, "proxy_request")
    assert [(e["status"], e["result"], e.get("user")) for e in logged] == [(403, "TCP_DENIED", None), (407, "TCP_DENIED", None),
                                                                           (200, "TCP_MISS", "alice")]
    assert "http_access deny blocked" in logged[0]["rule"]


def test_an_unknown_name_is_a_503_and_an_origin_form_request_a_400(tmp_path):
    async def go():
        proxy, front, proxy_port = await start_proxy(tmp_path)
        out = []
        for request in ("GET http://nowhere/ HTTP/1.1\r\nHost: nowhere\r\n\r\n", "GET / HTTP/1.1\r\nHost: origin\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            writer.write(request.encode())
            out.append((await read_answer(reader))[0])
            writer.close()
        front.close()
        return out

    unknown, origin_form = asyncio.run(go())
    assert unknown.startswith("HTTP/1.1 503 ") and origin_form.startswith("HTTP/1.1 400 ")


def loops():
    """The default loop and uvloop (what the services run on when it is installed)."""
    out = [asyncio.new_event_loop]
    try:
        import uvloop

        out.append(uvloop.new_event_loop)
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("new_loop", loops(), ids=lambda f: f.__module__.split(".")[0])
def test_an_https_proxy_carries_the_connect_and_the_tunnel_inside_tls(tmp_path, new_loop):
    import ssl

    from lab.net import tls
    from lab.services.runtime import server_tls

    cert, key = tls.certificate(tmp_path, "fp1", ["fp1", "127.0.0.1"])
    client_tls = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.pem"))

    async def go():
        echo, port = await echo_server()
        proxy = ForwardProxy(Context(proxy_config(acl=OPEN, stock=False), EventLog(tmp_path / "fp1.jsonl", "fp1", "proxy")))
        context = server_tls({"tls_cert": cert, "tls_key": key})
        front = await asyncio.get_running_loop().create_server(lambda: ProxyClient(proxy), "127.0.0.1", 0, ssl=context)
        reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1], ssl=client_tls,
                                                       server_hostname="127.0.0.1")
        writer.write(f"CONNECT origin:{port} HTTP/1.1\r\nHost: origin:{port}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.write(b"inside two layers")
        back = await asyncio.wait_for(reader.readexactly(17), 3)
        writer.close()
        await tunnels_closed(proxy)
        front.close()
        echo.close()
        return head, back

    loop = new_loop()
    try:
        head, back = loop.run_until_complete(go())
    finally:
        loop.close()
    assert head.startswith(b"HTTP/1.1 200 ") and back == b"inside two layers"
    (tunnel,) = events(tmp_path, "proxy_request")
    assert tunnel["result"] == "TCP_TUNNEL" and tunnel["up"] == tunnel["down"] == 17


def test_the_proxys_cache_serves_the_whole_client_lan_from_one_origin_request(tmp_path):
    seen = []

    async def go():
        origin, port = await recording_origin(seen, b"Cache-Control: max-age=60\r\n")
        _, front, proxy_port = await start_proxy(tmp_path, cache=True)
        answers = []
        for _ in range(3):  # three clients, one connection each
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            writer.write(f"GET http://origin:{port}/page HTTP/1.1\r\nHost: origin:{port}\r\n\r\n".encode())
            answers.append(await read_answer(reader))
            writer.close()
        # two misses pipelined on one connection: each rewritten for the origin when (and as) the cache asks for it
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        writer.write("".join(f"GET http://origin:{port}/{p} HTTP/1.1\r\nHost: origin:{port}\r\n\r\n" for p in ("one", "two")).encode())
        answers += [await read_answer(reader), await read_answer(reader)]
        writer.close()
        front.close()
        origin.close()
        return answers

    answers = asyncio.run(go())
    assert [body for _, body in answers] == [b"hi"] * 5 and len(seen) == 3
    assert "X-Cache: MISS from fp1" in answers[0][0] and all("X-Cache: HIT from fp1" in head for head, _ in answers[1:3])
    assert seen[0].startswith("GET /page HTTP/1.1")  # the cache's own request went out in origin form, as the proxy's do
    assert "Via: 1.1 fp1 (halab)" in seen[0] and "X-Forwarded-For: 127.0.0.1" in seen[0]
    assert seen[1].startswith("GET /one HTTP/1.1") and seen[2].startswith("GET /two HTTP/1.1")
    results = [e["squid"] for e in events(tmp_path, "cache_result")]
    assert results == ["TCP_MISS", "TCP_HIT", "TCP_HIT", "TCP_MISS", "TCP_MISS"]


def test_an_admission_is_remembered_only_for_exactly_what_it_read(tmp_path, monkeypatch):
    from lab.core import acl
    from lab.core.http1 import HttpError, parse_request_head
    from lab.services import forward_proxy

    # ForwardProxy.check keys its memory on the client, method, target, Host, Via, Proxy-Authorization and the minute:
    # an acl type that reads anything else (a User-Agent, another header) must be added to that key first
    assert set(acl.TYPES) == {"src", "dst", "dstdomain", "port", "method", "url_regex", "proxy_auth", "time"}

    rules = "acl login proxy_auth REQUIRED\nhttp_access allow login"
    proxy = ForwardProxy(Context(proxy_config(acl=rules, stock=False, users={"alice": "pw"}), EventLog(tmp_path / "fp1.jsonl", "fp1", "proxy")))

    def head(*lines, target="http://origin/a"):
        return parse_request_head(f"GET {target} HTTP/1.1\r\n".encode() + "".join(f"{x}\r\n" for x in lines).encode() + b"\r\n")

    good = "Proxy-Authorization: Basic " + base64.b64encode(b"alice:pw").decode()
    bad = "Proxy-Authorization: Basic " + base64.b64encode(b"alice:wrong").decode()
    first = proxy.check("10.1.0.101", head("Host: origin", good))
    assert proxy.check("10.1.0.101", head("Host: origin", good)) is first and len(proxy.admitted) == 1  # the same: remembered
    assert first[0].host == "origin" and first[1] == "alice"
    for refused, status in ((head("Host: origin", bad), 407), (head("Host: origin"), 407),  # other credentials: decided again
                            (head("Host: elsewhere", good), 400),  # Host and URL disagree: smuggling
                            (head("Host: origin", "Via: 1.1 c", "Via: 1.1 fp1 (halab)", good), 403)):  # its own name in the 2nd Via
        for _ in range(2):  # a refusal is never remembered: every one is decided (and logged) afresh
            with pytest.raises(HttpError) as e:
                proxy.check("10.1.0.101", refused)
            assert e.value.status == status
    assert len(proxy.admitted) == 1
    proxy.check("10.1.0.102", head("Host: origin", good))  # another client: its own entry (src acls read it)
    proxy.check("10.1.0.101", head("Host: origin", good, target="http://origin/b"))
    assert len(proxy.admitted) == 3
    monkeypatch.setattr(forward_proxy, "ADMITTED", 3)
    proxy.check("10.1.0.101", head("Host: origin", good, target="http://origin/c"))
    assert len(proxy.admitted) == 1  # full: forgotten at once, then this one remembered


def test_with_a_time_acl_an_admission_is_remembered_for_its_minute_only(tmp_path, monkeypatch):
    from lab.core.http1 import parse_request_head
    from lab.services import forward_proxy

    proxy = ForwardProxy(Context(proxy_config(acl="acl day time 00:00-23:59\nhttp_access allow day", stock=False),
                                 EventLog(tmp_path / "fp1.jsonl", "fp1", "proxy")))
    request = parse_request_head(b"GET http://origin/ HTTP/1.1\r\nHost: origin\r\n\r\n")
    clock = [6000.0]
    monkeypatch.setattr(forward_proxy.time, "time", lambda: clock[0])
    proxy.check("10.1.0.101", request)
    clock[0] = 6059.0
    proxy.check("10.1.0.101", request)
    assert len(proxy.admitted) == 1
    clock[0] = 6060.0  # the next minute: the rules may say otherwise now
    proxy.check("10.1.0.101", request)
    assert len(proxy.admitted) == 2
