"""What an HTTP service accepts from a client it does not trust: limits and timeouts.

One frozen dataclass, each field with its default and the real system that
default follows. The scenario's ``[balancer]`` keys are generated from it
(``fields()``), the balancer rebuilds it from its JSON config
(``from_config``), and the HAProxy and nginx renderers spell the same values
in their own directives, so the three gateways are held to the same rules.

A client that breaks a limit gets the status that names it and a closed
connection, never silence: 408 (too slow), 413 (body), 414 (target),
431 (head, header count, header line), 429 (too many requests: the rate
limit of ``lab.core.rate_limit``), 400 (anything malformed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from lab.core import schema
from lab.core.schema import Field, setting


@dataclass(frozen=True)
class ClientLimits:
    timeout_http_request: float = setting(
        5.0, "seconds for a whole request head, from its first byte; then 408 (HAProxy 'timeout http-request'; "
             "nginx client_header_timeout is 60 s). Caps how long a slowloris client holds a connection", minimum=0.05)
    timeout_client: float = setting(
        30.0, "seconds a client may stay silent in the middle of a request body; then 408 "
              "(HAProxy 'timeout client'; nginx client_body_timeout 60 s)", minimum=0.05)
    timeout_keep_alive: float = setting(
        10.0, "seconds an idle kept-alive client connection stays open between requests "
              "(HAProxy 'timeout http-keep-alive'; nginx keepalive_timeout 75 s)", minimum=0.05)
    max_head: int = setting(16384, "bytes in a request head; more is 431 (HAProxy tune.bufsize 16384)", minimum=256)
    max_headers: int = setting(101, "header fields in a request; more is 431 (HAProxy tune.http.maxhdr 101)", minimum=1)
    max_line: int = setting(8192, "bytes in one header line; more is 431 (nginx large_client_header_buffers 8k)", minimum=64)
    max_body: int = setting(0, "bytes in a request body; more is 413 (nginx client_max_body_size; 0 = no limit, as HAProxy)", minimum=0)
    rate_limit: float = setting(0.0, "requests a second one client address may keep sending; more are answered 429 Too Many "
                                     "Requests before any server sees them (nginx limit_req rate, HAProxy sc_http_req_rate); "
                                     "0 = no limit", minimum=0)
    rate_burst: int = setting(0, "requests above rate_limit a client may send at once (nginx limit_req burst, with nodelay)", minimum=0)
    trust_forwarded_host: bool = setting(
        False, "pass on an X-Forwarded-Host header the client sent (HAProxy and nginx do unless told otherwise); off: the "
               "gateway drops it, because an origin that builds links from it would put a client's chosen host into "
               "answers a cache keeps for everyone (cache poisoning through an unkeyed header)")
    buffer_body: int = setting(
        65536, "a body up to this size is read whole before it is forwarded, so a failed attempt can be retried; "
               "larger and chunked bodies are streamed (nginx proxy_request_buffering, HAProxy http-buffer-request)", minimum=0)

    def __post_init__(self) -> None:
        if self.max_line > self.max_head:
            raise ValueError(f"max_line ({self.max_line}) cannot be larger than max_head ({self.max_head})")


def fields() -> dict[str, Field]:
    """The scenario's keys for these settings, with their defaults, bounds and help, from the dataclass itself."""
    return schema.fields_of(ClientLimits)


def from_config(cfg: Mapping[str, Any]) -> ClientLimits:
    """The limits a service was configured with (the keys it does not name keep their defaults)."""
    return schema.from_config(ClientLimits, cfg)


def as_config(limits: ClientLimits) -> dict[str, Any]:
    return schema.as_config(limits)
