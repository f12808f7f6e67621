"""Differential fuzzing of halab's HTTP/1.1 request parser against h11, a well-kept parser, as the oracle.

Hypothesis builds request heads and bodies from the pieces that smuggling
attacks are made of (framing headers with odd values, separators, line
endings, chunked bodies right and wrong). For each one:

- where both accept the head, they must agree on method, target, version,
  every header, and exactly where the body ends (length and completeness);
- where h11 refuses, halab must refuse too;
- where halab refuses and h11 accepts, halab is stricter on purpose, and the
  reason must be one of ``STRICTER`` below (each is a known smuggling vector
  or a limit); any other disagreement fails the test.

``HALAB_FUZZ_EXAMPLES`` raises the number of cases (default 1500, a few
seconds); the closing numbers are printed with ``pytest -s``.
"""
import os
from collections import Counter

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.core.http1 import CHUNKED, LENGTH, ChunkedScanner, HttpError, parse_request_head, request_framing

EXAMPLES = int(os.environ.get("HALAB_FUZZ_EXAMPLES", "1500"))

# Where halab refuses what h11 accepts, and why that is right for a gateway.
STRICTER = {
    "both Transfer-Encoding and Content-Length": "TE+CL: h11 follows chunked (RFC 9112 6.1 allows it, then close); a gateway refuses, "
                                                 "as the classic CL.TE/TE.CL smuggling pair",
    "Transfer-Encoding in an HTTP/1.0": "chunked does not exist in HTTP/1.0; RFC 9112 6.1 says to treat it as faulty framing",
    "Connection names": "Connection listing Content-Length/Transfer-Encoding/Host: a proxy would drop the header and re-frame",
    "bare LF": "LF-only line endings: RFC 9112 2.2 MAY accept; a gateway that did would disagree with stricter origins",
    "obsolete header line folding": "obs-fold: RFC 9112 5.2 lets a server reject it",
    "is not host[:port]": "a Host that is no authority (userinfo, spaces, slashes): cache-key and routing confusion",
    "is not supported; use HTTP/1.1": "HTTP/1.2+ in an HTTP/1 request line: refused with 505 instead of being read as 1.1",
    "beyond any body": "a Content-Length of 19+ digits: past any 64-bit offset",
    "holds a bare CR, LF or NUL": "a bare CR in a value: RFC 9110 5.5 lets a recipient reject it",
    "has no colon": "a header line without a colon (h11 reads it as folded or ignores it)",
    "empty line inside": "an empty line inside the header section",
    "is not a number": "a Content-Length list ('3, 3'): RFC 9110 8.6 MAY merge; refused like any non-number",
    "vertical tab or form feed": "VT or FF in a value: whitespace that HTTP does not trim and some parsers do",
    "conflicting Content-Length values": "'3' and '3, 3': equal once merged (h11 merges); refused, as never forwarded twice",
    "Content-Length headers; send one": "equal Content-Length copies: RFC 9110 8.6 MAY merge; refused rather than forwarded twice",
}

METHODS = st.sampled_from(["GET"] * 4 + ["POST"] * 4 + ["PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "G@T", "get", "M-SEARCH"])
TARGETS = st.text(alphabet="abc/?=&%.-_~!$'()*+,;:@", max_size=12).map(lambda t: "/" + t) | \
    st.sampled_from(["/", "/a?b=c", "*", "http://x/y", "/%20", "/a%00", "/~x", "/\x7f", "/a\tb"])
VERSIONS = st.sampled_from(["HTTP/1.1"] * 20 + ["HTTP/1.0"] * 5 + ["HTTP/1.2", "http/1.1", "HTTP/2.0", "HTTP/1.10", "HTTP/1"])
VALUES = {
    "Host": st.sampled_from(["x", "x:80", "x:", "[::1]:80", "x@y", "x y", "", "x/y", "a.b-c_d"]),
    "Content-Length": st.sampled_from(["0", "3", "5", "+3", "-1", "0x3", "3, 3", "3 ", "003", "12345678901234567890", "\xb2", "3\x00"])
    | st.integers(0, 30).map(str),
    "Transfer-Encoding": st.sampled_from(["chunked"] * 6 + ["CHUNKED", "chunked, chunked", "gzip, chunked", "identity", "chunked ",
                                          '"chunked"', "xchunked", "chunked, identity", "chunked,", ",chunked", "\x0bchunked",
                                          "chunked\xa0", "\x85chunked", "chunked\x1f"]),
    "Connection": st.sampled_from(["close", "keep-alive", "Content-Length", "close, host", "Transfer-Encoding", "upgrade", "x-a", ""]),
    "Expect": st.sampled_from(["100-continue", "x"]),
}
GENERIC = st.text(alphabet="abc 09\t,;=\"", max_size=8) | st.text(alphabet="abc 09\t,;=\"\x01\x7f\xff\xa0\x85\x0b\r\n\x00", max_size=8)
NAMES = st.sampled_from([n for n in VALUES if n != "Host"] * 6 + ["Host"] + ["X-A"] * 4 + ["Via", "content-length", "transfer-encoding", "Ho st", "X\x00", "X:Y"])
SEPARATORS = st.sampled_from([": "] * 10 + [":", ":\t", " : ", ":  "])
ENDINGS = st.sampled_from(["\r\n"] * 30 + ["\n", "\r\n "])
BODIES = st.sampled_from([b"", b"abc", b"hello", b"0\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n", b"3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
                          b"3\nabc\r\n0\r\n\r\n", b"0x3\r\nabc\r\n0\r\n\r\n", b"3\r\nabcd\r\n0\r\n\r\n", b"A\r\n0123456789\r\n0\r\n\r\n",
                          b"3 \r\nabc\r\n0\r\n\r\n", b"0\r\nX\r\n\r\n", b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"]) | st.binary(max_size=16)


@st.composite
def requests(draw):
    start = f"{draw(METHODS)} {draw(TARGETS)} {draw(VERSIONS)}"
    lines = [start + draw(ENDINGS)]
    if draw(st.integers(0, 9)):  # most requests have a Host
        lines.append("Host: " + draw(VALUES["Host"]) + "\r\n")
    for _ in range(draw(st.integers(0, 4))):
        name = draw(NAMES)
        value = draw(VALUES.get(name.title() if name.islower() else name, GENERIC))
        lines.append(name + draw(SEPARATORS) + value + draw(ENDINGS))
    lines.append(draw(st.sampled_from(["\r\n"] * 10 + ["\n"])))
    return "".join(lines).encode("latin-1") + draw(BODIES)


def oracle(data: bytes):
    """h11's reading: ("refused", why) or ("head", method, target, version, headers, body bytes or None, complete)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        event = conn.next_event()
        if not isinstance(event, h11.Request):
            return ("incomplete",)
        head = ("head", event.method.decode("latin-1"), event.target.decode("latin-1"), "HTTP/" + event.http_version.decode(),
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers])
        size = 0
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return head + (size, True)
            else:
                return head + (size, False)
    except h11.RemoteProtocolError as e:
        return ("refused", str(e)) if "head" not in locals() else head + (None, False)


def halab(data: bytes):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return ("incomplete",)
    try:
        head = parse_request_head(data[:end + 4])
        framing, length = request_framing(head)
    except HttpError as e:
        return ("refused", e.message)
    out = ("head", head.method, head.target, head.version, [(k.lower(), v) for k, v in head.headers])
    rest = data[end + 4:]
    if framing == LENGTH:
        return out + (min(length, len(rest)), len(rest) >= length)
    if framing == CHUNKED:
        scanner = ChunkedScanner()
        try:
            scanner.feed(rest)
        except HttpError:
            return out + (None, False)
        return out + (scanner.size if scanner.done else None, scanner.done)
    return out + (0, True)


STATS: Counter = Counter()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(requests())
def test_halab_frames_every_request_as_h11_does_or_refuses_it_for_a_listed_reason(data):
    ours, theirs = halab(data), oracle(data)
    STATS["cases"] += 1
    if ours[0] == "incomplete" or theirs[0] == "incomplete":
        STATS["incomplete head (skipped)"] += 1
        return
    if theirs[0] == "refused":
        assert ours[0] == "refused", f"h11 refuses ({theirs[1]}) what halab accepts: {data!r}"
        STATS["both refuse"] += 1
        return
    if ours[0] == "refused":
        reason = next((r for r in STRICTER if r in ours[1]), None)
        assert reason is not None, f"halab refuses ({ours[1]}) what h11 accepts, for no listed reason: {data!r}"
        STATS[f"halab stricter: {reason}"] += 1
        return
    assert ours[1:4] == (theirs[1], theirs[2], theirs[3] if theirs[3] != "HTTP/1.1" or ours[3] != "HTTP/1.0" else ours[3]), data
    # h11 lower-cases Transfer-Encoding values; the coding name is case-insensitive anyway
    assert [(k, v.lower() if k == "transfer-encoding" else v) for k, v in ours[4]] == theirs[4], f"headers differ: {data!r}"
    if theirs[5] is None or ours[5] is None:  # a body one of them found malformed
        assert theirs[5] is None and ours[5] is None or not ours[6], f"body verdicts differ: {ours[5:]} vs {theirs[5:]}: {data!r}"
        STATS["both refuse the body"] += 1
        return
    if ours[6] and theirs[6]:
        assert ours[5] == theirs[5], f"body lengths differ: {ours[5]} vs {theirs[5]}: {data!r}"
    STATS["both accept, same framing"] += 1


@pytest.fixture(scope="module", autouse=True)
def print_numbers():
    yield
    print("\ndifferential fuzzing against h11:", dict(sorted(STATS.items())))
