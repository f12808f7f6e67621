import pytest

from lab.core import http1
from lab.core.http1 import HOP_BY_HOP, ChunkedScanner, HttpError, parse_request_head, parse_response_head


def test_request_head():
    h = parse_request_head(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Id:  7 \r\n\r\n")
    assert (h.method, h.target, h.version) == ("GET", "/a?b=1", "HTTP/1.1")
    assert h.get("x-id") == "7" and h.keep_alive()


@pytest.mark.parametrize("raw,status,words", [
    (b"GARBAGE\r\n\r\n", 400, "must be 'METHOD target HTTP/1.1'"),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "not supported"),
    (b"GET / FTP/1.0\r\n\r\n", 400, "not an HTTP version"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, "exactly one Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "exactly one Host"),
    (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "has no colon"),
    (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "not a valid header name"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "folding"),
    (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not a valid method"),
])
def test_malformed_requests_get_specific_errors(raw, status, words):
    with pytest.raises(HttpError) as e:
        parse_request_head(raw)
    assert e.value.status == status and words in e.value.message


def test_head_too_large():
    with pytest.raises(HttpError) as e:
        parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n")
    assert e.value.status == 431


def test_framing():
    req = parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    assert http1.request_framing(req) == ("length", 5)
    smuggle = parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(HttpError, match="smuggling"):
        http1.request_framing(smuggle)
    conflict = parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
    with pytest.raises(HttpError, match="conflicting"):
        http1.request_framing(conflict)
    resp = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert http1.response_framing(resp, "GET") == ("chunked", 0)
    assert http1.response_framing(resp, "HEAD") == ("none", 0)
    assert http1.response_framing(parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n"), "GET") == ("close", 0)
    assert http1.response_framing(parse_response_head(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"), "GET") == ("none", 0)


def test_keep_alive_rules():
    assert not parse_response_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keep_alive()
    assert not parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n").keep_alive()
    assert parse_response_head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n").keep_alive()


def test_bad_status_line():
    with pytest.raises(HttpError) as e:
        parse_response_head(b"HTTP/1.1 OK\r\n\r\n")
    assert e.value.status == 502


def test_chunked_scanner_in_pieces():
    body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
    rest = b"NEXT"
    for split in range(1, len(body)):
        s = ChunkedScanner()
        used = s.feed(body[:split])
        assert used == split and not s.done
        used = s.feed(body[split:] + rest)
        assert s.done and used == len(body) - split


def test_chunked_scanner_rejects_garbage():
    with pytest.raises(HttpError, match="bad chunk size"):
        ChunkedScanner().feed(b"zz\r\n")


def test_forward_headers_drop_hop_by_hop_and_named():
    h = parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Ok: 2\r\n\r\n")
    assert http1.forward_headers(h) == [("Host", "x"), ("X-Ok", "2")]


def test_error_response_says_why():
    raw = http1.error_response(502, "cannot connect to o2")
    assert raw.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and raw.endswith(b"502 Bad Gateway: cannot connect to o2\n")
    assert b"Connection: close" in raw


@pytest.mark.parametrize("raw,status,words", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\ntwo\r\n\r\n", 400, "bare CR, LF or NUL"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\rtwo\r\n\r\n", 400, "bare CR, LF or NUL"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: nul\x00\r\n\r\n", 400, "bare CR, LF or NUL"),
    (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "control or non-ASCII"),
    (b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "control or non-ASCII"),
    (b"\r\n\r\n", 400, "empty message head"),
])
def test_smuggling_shapes_are_refused(raw, status, words):
    with pytest.raises(HttpError) as e:
        parse_request_head(raw)
    assert e.value.status == status and words in e.value.message


def test_unicode_digits_are_not_numbers():
    # str.isdigit() says yes to '²' (latin-1 0xB2), and int() then raises: both must be a clean HttpError.
    with pytest.raises(HttpError, match="not a number"):
        http1.request_framing(parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n"))
    with pytest.raises(HttpError, match="not a number"):
        http1.response_framing(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\xb2\r\n\r\n"), "GET")
    with pytest.raises(HttpError) as e:
        parse_response_head(b"HTTP/1.1 2\xb20 OK\r\n\r\n")
    assert e.value.status == 502


def test_fast_and_careful_header_parsers_agree():
    """The one-regex fast path must read every head it accepts exactly as the line-by-line parser does."""
    import random

    rng = random.Random(7)
    names = ["Host", "X-Id", "content-length", "A", "X_Under", "weird!#$%&'*+-.^_`|~"]
    values = ["", "x", " padded ", "\tt\t", "a: b", "v , w", "ü", "x y  z", "  "]
    for _ in range(2000):
        headers = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randint(0, 6))]
        text = "GET / HTTP/1.0\r\n" + "".join(f"{k}:{v}\r\n" for k, v in headers) + "\r\n"
        start = text.find("\r\n")
        fast = http1._headers(text, start, len(text) - 2)
        careful = http1._parse_headers([line for line in text[start + 2:-4].split("\r\n")] if headers else [])
        assert fast == careful == [(k, v.strip(" \t")) for k, v in headers]


def test_plain_response_agrees_with_the_full_parse():
    """The balancer's shortcut for answers must decide exactly what the full parse decides, or step aside (None)."""
    import random

    rng = random.Random(11)
    lines = ["X-Served-By: o1", "Content-Type: text/plain", "content-length: 5", "Content-Length: 0", "CONTENT-LENGTH:  12 ",
             "Connection: close", "connection: keep-alive", "Transfer-Encoding: chunked", "TE: trailers", "Keep-Alive: 5",
             "X-Connection: close", "Content-Lengthy: 3", "Content-Length: x1", "Upgrade: h2c", "Via: 1.1 o"]
    plain_seen = stepped_aside = 0
    for _ in range(3000):
        start = f"{rng.choice(['HTTP/1.1', 'HTTP/1.0'])} {rng.choice(['200', '204', '304', '101', '404', '502'])} {rng.choice(['OK', '', 'Fine Thanks'])}"
        head = (start.rstrip() + "\r\n" + "".join(line + "\r\n" for line in rng.sample(lines, rng.randint(0, 4))) + "\r\n").encode()
        method = rng.choice(["GET", "HEAD", "POST"])
        plain = http1.plain_response(head, method)
        try:
            full = parse_response_head(head)
            framing, length = http1.response_framing(full, method)
        except HttpError:
            assert plain is None, head
            continue
        if plain is None:
            stepped_aside += 1
            lengths = full.get_all("content-length")
            assert (HOP_BY_HOP & full.index.keys()) or len(lengths) > 1 or not all(v.isdigit() for v in lengths), head
            continue
        plain_seen += 1
        assert not (HOP_BY_HOP & full.index.keys()), head
        assert plain == (full.status, framing, length, full.keep_alive() and framing != "close"), head
    assert plain_seen > 500 and stepped_aside > 500  # both roads were really taken


def test_plain_response_steps_aside_for_malformed_heads():
    for head in [b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", b"HTTP/1.1 20 OK\r\n\r\n", b"HTTP/2 200 OK\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n", b"HTTP/1.1 200OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nX: 1\r\n"]:
        assert http1.plain_response(head, "GET") is None, head


@pytest.mark.parametrize("body", [
    b"0x5\r\nhello\r\n0\r\n\r\n", b"-1\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n", b"1_0\r\n", b" 5\r\nhello\r\n0\r\n\r\n",
    b"5\nhello\r\n0\r\n\r\n", b"5\r\nhello\n0\r\n\r\n", b"5\r\nhelloX\r\n0\r\n\r\n", b"11111111111111111\r\n",
    b"0\r\nno colon here\r\n\r\n", b"5\r\nhello\r\n0\r\n\n",
])
def test_chunked_bodies_that_two_parsers_could_read_differently_are_refused(body):
    with pytest.raises(HttpError) as e:
        ChunkedScanner().feed(body)
    assert e.value.status == 400


def test_a_chunked_body_with_extensions_and_trailers_is_read_to_its_end():
    s = ChunkedScanner()
    body = b"5;a=b\r\nhello\r\n3 ; x\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
    assert s.feed(body + b"NEXT") == len(body) and s.done and s.size == 8


@pytest.mark.parametrize("head, status, kind", [
    (b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\n", 400, "smuggling"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, host\r\n\r\n", 400, "smuggling"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "smuggling"),
    (b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", 400, "smuggling"),
    (b"GET / HTTP/1.1\r\nHost: x/y@z\r\n\r\n", 400, "malformed"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431, "head_too_large"),
    (b"GET /\r\n\r\n", 400, "version"),
])
def test_request_heads_refused_with_their_status_and_kind(head, status, kind):
    with pytest.raises(HttpError) as e:
        parse_request_head(head)
    assert (e.value.status, e.value.kind) == (status, kind)


def test_a_response_whose_connection_names_content_length_is_a_bad_gateway():
    with pytest.raises(HttpError) as e:
        parse_response_head(b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\n")
    assert e.value.status == 502 and e.value.kind == "smuggling"


@pytest.mark.parametrize("partial, status", [
    (b"GET / HTTP/1.1\nHost", 400), (b"GET /\r\n", 400), (b"GET / HTTP/1.1\r\nHost: x\nX", 400),
    (b"GET / HTTP/3.0\r\n", 505), (b"G" * 9000, 414),
])
def test_an_unfinished_head_that_cannot_become_valid_is_refused_at_once(partial, status):
    with pytest.raises(HttpError) as e:
        http1.check_partial_request(partial)
    assert e.value.status == status


def test_an_unfinished_head_that_may_still_become_valid_is_waited_for():
    for partial in (b"GE", b"GET / HTTP/1.1\r", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaa", b"GET / HTTP/1.1\r\nHost: x\r"):
        http1.check_partial_request(partial)
