"""The hostile-HTTP corpus through the forward proxy, on loopback: the same shapes the gateway refuses, in absolute form.

A forward proxy is a gateway's data path with another way of choosing the
origin, so every smuggling shape must be refused there too, and nothing
hidden in a body may reach the origin. The corpus (``lab.packets.hostile_corpus``)
is rewritten to what a client of a proxy sends (``GET http://lab:PORT/corpus/...``);
a recording origin keeps every request it parsed, and any request it parsed
that the proxy did not say it forwarded was smuggled past it.
"""
import asyncio
import dataclasses
import json
from collections import Counter

from lab.core.client_limits import ClientLimits
from lab.events import EventLog
from lab.packets.hostile import send
from lab.packets.hostile_corpus import SHAPES, judge, requests_in
from lab.services.forward_proxy import ForwardProxy, ProxyClient
from lab.services.runtime import Context

from .test_forward_proxy_loopback import proxy_config
from .test_gateway_hostile import RecordingOrigin


def absolute(shape, port):
    """The shape as a proxy's client writes it: every request target in absolute form (the Host header says 'lab')."""
    def build(p, s):
        data = shape.build(p, s)
        for path in (b" /corpus/", b" /smuggled/"):
            data = data.replace(path, b" http://lab:%d%s" % (port, path[1:]))
        return data.replace(b"Host: lab\r\n", b"Host: lab:%d\r\n" % port)
    return dataclasses.replace(shape, build=build)


def test_every_hostile_shape_is_refused_or_served_as_by_the_gateway_and_nothing_is_smuggled(tmp_path):
    async def go():
        origin = RecordingOrigin()
        port = await origin.start()
        cfg = proxy_config(acl="http_access allow all", stock=False)
        cfg["hosts"] = {"lab": "127.0.0.1"}
        proxy = ForwardProxy(Context(cfg, EventLog(tmp_path / "fp1.jsonl", "fp1", "proxy")))
        proxy.limits = ClientLimits(timeout_http_request=1.0, timeout_client=1.0, timeout_keep_alive=1.0)
        front = await asyncio.get_running_loop().create_server(lambda: ProxyClient(proxy), "127.0.0.1", 0)
        proxy_port = front.sockets[0].getsockname()[1]
        results = await asyncio.gather(*(send("127.0.0.1", proxy_port, absolute(s, port), "fp", 3.0) for s in SHAPES))
        front.close()
        origin.server.close()
        return results, [target for _, target, _, _ in origin.seen]

    results, parsed = asyncio.run(go())
    # what the proxy says it forwarded; the origin parsing anything more would be a request smuggled past it
    forwarded = [e["url"] for e in map(json.loads, (tmp_path / "fp1.jsonl").read_text().splitlines())
                 if e["kind"] == "proxy_request" and e["result"] == "TCP_MISS"]
    problems = judge(list(results), requests_in(parsed, "fp"), requests_in(forwarded, "fp"), bound=3.0)
    assert problems == []
    served = Counter(r["name"] for r in results if r["statuses"] and r["statuses"][-1] < 400)
    assert served  # the valid shapes went through (judge checks each)
