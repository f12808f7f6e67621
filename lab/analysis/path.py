"""The path of one request, hop by hop, from what each hop logged (pure: events in, lines out).

A request's id (``X-Request-Id``, set by the client: ``c1-42``) travels with
it, so the client's ``request_finished``, the forward proxy's
``proxy_request``, the gateway's ``request_routed`` and the origin's
``request_parsed`` can be joined. The result is the course's drawing for
one real message: each leg with its direction (toward the origin is
*inbound*, back to the client *outbound*), and the ``Via`` and
``X-Forwarded-For`` the origin finally saw, which is all it learns about
the hops before it.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

Event = Mapping[str, Any]


def hops(events: Sequence[Event], rid: str) -> list[str]:
    """One line per leg of request ``rid``, or a line saying it was not found."""
    mine = [e for e in events if e.get("id") == rid]
    client = next((e for e in mine if e["kind"] == "request_finished"), None)
    if client is None:
        return [f"no request with id {rid!r} in this run"]
    proxy = next((e for e in mine if e["kind"] == "proxy_request"), None)
    routed = [e for e in mine if e["kind"] == "request_routed"]
    origin = next((e for e in mine if e["kind"] == "request_parsed"), None)
    status = client.get("status")
    lines = [f"request {rid}: GET {client.get('path', '/')} -> {status if status is not None else client.get('error')}"
             f" in {client['latency'] * 1000:.1f} ms (as client {client['node']} saw it)"]
    at = client["node"]
    if proxy is not None:
        lines.append(f"  {at} -> {proxy['node']:<8} inbound   {proxy['method']} {proxy['url']}  (absolute form: the client chose "
                     f"this proxy; {proxy['result']}/{proxy['status']} in {proxy['duration'] * 1000:.1f} ms)")
        at = proxy["node"]
    elif client.get("proxy"):  # a proxy that logs no ids (an old run)
        lines.append(f"  {at} -> {client['proxy']:<8} inbound   (through the proxy the client chose; its log names no request ids)")
        at = client["proxy"]
    for e in routed:
        lines.append(f"  {at} -> {e['node']:<8} inbound   {e.get('method', 'GET')} {e.get('path', '/')}  (to the gateway, which "
                     f"routed it to {e['server']}, attempt {e.get('attempt', 1)})")
        lines.append(f"  {e['node']} -> {e['server']:<8} inbound")
        at = e["server"]
    if origin is not None:
        lines.append(f"  at {origin['node']}: Via: {origin.get('via') or '(none)'}; X-Forwarded-For: "
                     f"{origin.get('forwarded_for') or '(none)'}")
    via_proxy = proxy["node"] if proxy else client.get("proxy")
    back = [client["node"]] + ([via_proxy] if via_proxy else []) + [e["node"] for e in routed[-1:]] + [at] * bool(routed)
    lines.append(f"  {' <- '.join(back)}  outbound  the answer, {status}"
                 + (f", served by {client['served_by']}" if client.get("served_by") else ""))
    return lines


def samples(events: Sequence[Event]) -> list[str]:
    """Ids worth drawing: the first successful request through a proxy and the first direct one, when both kinds exist."""
    finished = [e for e in events if e["kind"] == "request_finished" and e.get("ok")]
    through = next((e["id"] for e in finished if e.get("proxy")), None)
    if through is None:
        return []
    direct = next((e["id"] for e in finished if not e.get("proxy")), None)
    return [through] + ([direct] if direct else [])
