"""A forward proxy's decisions before forwarding (lab.core.forward): destination, loops, credentials, X-Forwarded-For."""
import base64

import pytest

from lab.core.forward import Destination, basic_credentials, destination, forwarded_for, loops_through
from lab.core.http1 import HttpError, parse_request_head


def head(line, *headers):
    return parse_request_head((line + "\r\n" + "".join(h + "\r\n" for h in headers) + "Host: x\r\n\r\n").encode())


@pytest.mark.parametrize("line, expected", [
    ("GET http://www.example.com/a?b=1 HTTP/1.1", Destination("http", "www.example.com", 80, "/a?b=1")),
    ("GET http://WWW.Example.COM HTTP/1.1", Destination("http", "www.example.com", 80, "/")),
    ("GET http://o1:8080/x#frag HTTP/1.1", Destination("http", "o1", 8080, "/x")),
    ("GET http://host?q HTTP/1.1", Destination("http", "host", 80, "/?q")),
    ("GET http://[2001:db8::1]:81/ HTTP/1.1", Destination("http", "2001:db8::1", 81, "/")),
    ("POST HTTP://10.2.0.11/form HTTP/1.1", Destination("http", "10.2.0.11", 80, "/form")),
    ("CONNECT www.example.com:443 HTTP/1.1", Destination("", "www.example.com", 443, "")),
    ("CONNECT [::1]:8443 HTTP/1.1", Destination("", "::1", 8443, "")),
])
def test_destination_from_the_absolute_form_and_connect(line, expected):
    assert destination(head(line)) == expected


@pytest.mark.parametrize("line, says", [
    ("GET /index.html HTTP/1.1", "not a full URL"),
    ("GET https://bank.example/ HTTP/1.1", "through CONNECT"),
    ("GET ftp://files.example/ HTTP/1.1", "plain http:// only"),
    ("GET http://user:pw@www.example.com/ HTTP/1.1", "user information"),
    ("GET http://www.example.com:0/ HTTP/1.1", "not a port"),
    ("GET http://www.example.com:99999/ HTTP/1.1", "not a port"),
    ("GET http://:80/ HTTP/1.1", "no host"),
    ("CONNECT www.example.com HTTP/1.1", "needs a port"),
    ("CONNECT [::1:443 HTTP/1.1", "without closing"),
    ("GET http://exa%6dple.com/ HTTP/1.1", "not a host name"),
])
def test_what_cannot_be_forwarded_is_a_400_that_says_why(line, says):
    with pytest.raises(HttpError, match=says) as e:
        destination(head(line))
    assert e.value.status == 400


def test_authority_omits_the_default_port():
    assert Destination("http", "o1", 80, "/").authority == "o1"
    assert Destination("http", "::1", 8080, "/").authority == "[::1]:8080"


def test_a_request_already_through_this_proxy_is_a_loop():
    assert loops_through(head("GET http://a/ HTTP/1.1", "Via: 1.1 fp2, 1.1 FP1 (halab)"), "fp1")
    assert not loops_through(head("GET http://a/ HTTP/1.1", "Via: 1.1 fp10"), "fp1")
    assert not loops_through(head("GET http://a/ HTTP/1.1"), "fp1")


def test_basic_proxy_credentials():
    token = base64.b64encode(b"alice:s3cret:with:colons").decode()
    assert basic_credentials(head("GET http://a/ HTTP/1.1", f"Proxy-Authorization: Basic {token}")) == ("alice", "s3cret:with:colons")
    assert basic_credentials(head("GET http://a/ HTTP/1.1", f"Proxy-Authorization: basic  {token}")) == ("alice", "s3cret:with:colons")
    for value in ("Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Basic " + base64.b64encode(b":pw").decode()):
        assert basic_credentials(head("GET http://a/ HTTP/1.1", f"Proxy-Authorization: {value}")) is None, value
    assert basic_credentials(head("GET http://a/ HTTP/1.1")) is None


def test_forwarded_for_modes_as_squid():
    assert forwarded_for(None, "10.1.0.5", "on") == "10.1.0.5"
    assert forwarded_for("1.2.3.4", "10.1.0.5", "on") == "1.2.3.4, 10.1.0.5"
    assert forwarded_for("1.2.3.4", "10.1.0.5", "off") == "1.2.3.4, unknown"
    assert forwarded_for("1.2.3.4", "10.1.0.5", "transparent") == "1.2.3.4"
    assert forwarded_for("1.2.3.4", "10.1.0.5", "delete") is None
    with pytest.raises(ValueError, match="forwarded_for"):
        forwarded_for(None, "x", "truncate")
