"""What an HTTP service accepts from a client it does not trust: limits and timeouts.

One frozen dataclass, each field with its default and the real system that
default follows. The scenario's ``[balancer]`` keys are generated from it
(``fields()``), the balancer rebuilds it from its JSON config
(``from_config``), and the HAProxy and nginx renderers spell the same values
in their own directives, so the three gateways are held to the same rules.

A client that breaks a limit gets the status that names it and a closed
connection, never silence: 408 (too slow), 413 (body), 414 (target),
431 (head, header count, header line), 400 (anything malformed).
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dc_fields
from typing import Any, Mapping

from lab.core.schema import Field


def setting(default: Any, help: str, minimum: float | None = None) -> Any:
    return field(default=default, metadata={"help": help, "minimum": minimum})


@dataclass(frozen=True)
class ClientLimits:
    timeout_http_request: float = setting(
        5.0, "seconds for a whole request head, from its first byte; then 408 (HAProxy 'timeout http-request'; "
             "nginx client_header_timeout is 60 s). Caps how long a slowloris client holds a connection", 0.05)
    timeout_client: float = setting(
        30.0, "seconds a client may stay silent in the middle of a request body; then 408 "
              "(HAProxy 'timeout client'; nginx client_body_timeout 60 s)", 0.05)
    timeout_keep_alive: float = setting(
        10.0, "seconds an idle kept-alive client connection stays open between requests "
              "(HAProxy 'timeout http-keep-alive'; nginx keepalive_timeout 75 s)", 0.05)
    max_head: int = setting(16384, "bytes in a request head; more is 431 (HAProxy tune.bufsize 16384)", 256)
    max_headers: int = setting(101, "header fields in a request; more is 431 (HAProxy tune.http.maxhdr 101)", 1)
    max_line: int = setting(8192, "bytes in one header line; more is 431 (nginx large_client_header_buffers 8k)", 64)
    max_body: int = setting(0, "bytes in a request body; more is 413 (nginx client_max_body_size; 0 = no limit, as HAProxy)", 0)
    buffer_body: int = setting(
        65536, "a body up to this size is read whole before it is forwarded, so a failed attempt can be retried; "
               "larger and chunked bodies are streamed (nginx proxy_request_buffering, HAProxy http-buffer-request)", 0)

    def __post_init__(self) -> None:
        if self.max_line > self.max_head:
            raise ValueError(f"max_line ({self.max_line}) cannot be larger than max_head ({self.max_head})")


def fields() -> dict[str, Field]:
    """The scenario's keys for these settings, with their defaults, bounds and help, from the dataclass itself."""
    out = {}
    for f in dc_fields(ClientLimits):
        kind = float if f.type in (float, "float") else int
        assert f.default is not MISSING
        out[f.name] = Field(kind, default=f.default, minimum=f.metadata["minimum"], help=f.metadata["help"])
    return out


def from_config(cfg: Mapping[str, Any]) -> ClientLimits:
    """The limits a service was configured with (the keys it does not name keep their defaults)."""
    names = {f.name for f in dc_fields(ClientLimits)}
    return ClientLimits(**{k: v for k, v in cfg.items() if k in names})


def as_config(limits: ClientLimits) -> dict[str, Any]:
    return {f.name: getattr(limits, f.name) for f in dc_fields(ClientLimits)}
