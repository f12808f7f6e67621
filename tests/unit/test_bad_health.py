"""Every malformed health-check answer is a failed probe with a readable reason: never a pass, never a crash, never a hang."""
import asyncio
import time

import pytest

from lab.core.health import HealthSettings
from lab.packets.bad_health import ANSWERS, serve
from lab.services.healthcheck import HealthChecker, Probe, Target

TIMEOUT = 0.3
# what the checker must say about each kind (a part of its reason)
SAYS = {
    "not_http": "connection closed in the middle of a message head",
    "closed": "PeerClosed",
    "bad_status_line": "is not 'HTTP/1.x NNN reason'",
    "status_out_of_range": "is not 'HTTP/1.x NNN reason'",
    "http_500": "HTTP 500",
    "http_503": "HTTP 503",
    "header_without_colon": "HttpError",
    "bad_content_length": "Content-Length",
    "two_content_lengths": "Content-Length",
    "length_and_chunked": "Transfer-Encoding",
    "bare_lf": f"no answer within {TIMEOUT:g} s",
    "endless_head": f"no answer within {TIMEOUT:g} s",
    "huge_head": "longer than",
    "silence": f"no answer within {TIMEOUT:g} s",
}


def probe_once(kind=None, answer=None):
    async def run():
        if answer is not None:
            async def handle(reader, writer):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
                writer.close()
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
        else:
            server = await serve("127.0.0.1", 0, kind)
        port = server.sockets[0].getsockname()[1]
        checker = HealthChecker([Target("o1", "127.0.0.1", port)], HealthSettings(inter=1.0, timeout=TIMEOUT), Probe("http", "/health"))
        started = time.monotonic()
        async with server:
            ok, detail = await checker.check(checker.targets[0])
        return ok, detail, time.monotonic() - started
    return asyncio.run(run())


def test_every_kind_has_an_expected_reason():
    assert set(SAYS) == set(ANSWERS)


@pytest.mark.parametrize("kind", list(ANSWERS))
def test_a_malformed_answer_fails_the_probe_with_its_reason_within_the_timeout(kind):
    ok, detail, took = probe_once(kind)
    assert not ok, f"{kind} ({ANSWERS[kind][2]}) passed the health check: {detail}"
    assert SAYS[kind] in detail, detail
    assert took < TIMEOUT + 0.2


def test_a_well_formed_answer_passes_so_the_failures_above_mean_something():
    ok, detail, _ = probe_once(answer=b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
    assert ok and detail == "HTTP 200"
