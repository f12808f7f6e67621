"""A forward proxy's decisions before forwarding (lab.core.forward): destination, loops, credentials, X-Forwarded-For."""
import base64

import pytest

from lab.core.forward import (
    Destination,
    ProxySettings,
    Refusal,
    admit,
    basic_credentials,
    destination,
    forwarded_for,
    host_mismatch,
    loops_through,
    origin_request,
)
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


# ---- what the proxy sends on, and what it decides ---------------------------------------
def raw_of(line, *headers):
    return (line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def exact(line, *headers):  # the head with exactly these headers (``head`` adds a Host)
    return parse_request_head(raw_of(line, *headers))


def test_origin_request_is_origin_form_with_host_from_the_url_and_no_proxy_credentials():
    raw = raw_of("GET http://gw1:8080/a?b HTTP/1.1", "Host: gw1:8080", "Proxy-Authorization: Basic YTpi",
                 "Proxy-Connection: keep-alive", "X-Forwarded-For: 192.0.2.1", "Accept: */*")
    h = parse_request_head(raw)
    out = origin_request(h, raw, destination(h), "10.1.0.101", "fp1 (halab)", "on").decode()
    lines = out.split("\r\n")
    assert lines[0] == "GET /a?b HTTP/1.1"
    assert "Host: gw1:8080" in lines and "Accept: */*" in lines
    assert "X-Forwarded-For: 192.0.2.1, 10.1.0.101" in lines and "Via: 1.1 fp1 (halab)" in lines
    assert "proxy-" not in out.lower()  # Proxy-Authorization is this proxy's alone; Proxy-Connection is hop-by-hop
    assert out.endswith("\r\n\r\n") and out.count("Host:") == 1


@pytest.mark.parametrize("mode, expected", [("on", "X-Forwarded-For: 10.1.0.101"), ("off", "X-Forwarded-For: unknown"),
                                            ("delete", None), ("transparent", None)])
def test_origin_request_follows_the_forwarded_for_mode(mode, expected):
    raw = raw_of("GET http://gw1/ HTTP/1.0")
    h = parse_request_head(raw)
    out = origin_request(h, raw, destination(h), "10.1.0.101", "fp1", mode).decode()
    assert out.startswith("GET / HTTP/1.1\r\n") and "Host: gw1\r\n" in out  # HTTP/1.0 in, 1.1 out, Host added
    assert (expected in out) if expected else "X-Forwarded-For" not in out


@pytest.mark.parametrize("host, mismatch", [("gw1", False), ("GW1:80", False), ("gw1:81", True), ("evil.example", True),
                                            (None, False)])
def test_host_must_name_the_urls_origin(host, mismatch):
    h = exact("GET http://gw1/ HTTP/1.1", f"Host: {host}") if host else exact("GET http://gw1/ HTTP/1.0")
    assert (host_mismatch(h, destination(h)) is not None) == mismatch


POLICY = ProxySettings(acl="acl staff src 10.1.0.101\nacl blocked dstdomain .bad.example\nhttp_access deny blocked\n"
                           "acl need_login proxy_auth REQUIRED\nhttp_access allow staff need_login",
                       stock=False, users={"alice": "wonder"})


def decide(line, *headers, client="10.1.0.101"):
    return admit(exact(line, *headers), client, "fp1", POLICY.policy(), POLICY.users, POLICY.realm)


def test_admit_checks_credentials_then_the_rules_first_match_wins():
    creds = "Proxy-Authorization: Basic " + base64.b64encode(b"alice:wonder").decode()
    dest, user = decide("GET http://gw1/ HTTP/1.1", "Host: gw1", creds)
    assert (dest.host, user) == ("gw1", "alice")
    with pytest.raises(Refusal) as e:  # no credentials: 407 with the realm, naming the rule that asked
        decide("GET http://gw1/ HTTP/1.1", "Host: gw1")
    assert e.value.status == 407 and e.value.headers == (("Proxy-Authenticate", 'Basic realm="halab proxy"'),)
    assert "line 5" in e.value.message
    wrong = "Proxy-Authorization: Basic " + base64.b64encode(b"alice:nope").decode()
    with pytest.raises(Refusal) as e:  # wrong password counts as none
        decide("GET http://gw1/ HTTP/1.1", "Host: gw1", wrong)
    assert e.value.status == 407
    with pytest.raises(Refusal) as e:  # denied before any login is asked for
        decide("GET http://www.bad.example/ HTTP/1.1", "Host: www.bad.example", creds)
    assert e.value.status == 403 and "http_access deny blocked" in e.value.message and e.value.request.host == "www.bad.example"
    with pytest.raises(Refusal) as e:  # someone else: no line matches, the opposite of the last (allow) is deny
        decide("GET http://gw1/ HTTP/1.1", "Host: gw1", creds, client="10.1.0.103")
    assert e.value.status == 403 and "no line matched" in e.value.message


def test_admit_refuses_loops_smuggling_shapes_and_origin_form():
    with pytest.raises(HttpError) as e:
        decide("GET http://gw1/ HTTP/1.1", "Host: gw1", "Via: 1.1 fp2 (halab), 1.1 fp1 (halab)")
    assert (e.value.status, e.value.kind) == (403, "loop")
    with pytest.raises(HttpError) as e:
        decide("GET http://gw1/ HTTP/1.1", "Host: o1")
    assert (e.value.status, e.value.kind) == (400, "smuggling")
    with pytest.raises(HttpError) as e:
        decide("GET / HTTP/1.1", "Host: gw1")
    assert e.value.status == 400 and "configured to use the proxy" in e.value.message


def test_dst_acls_see_the_address_the_proxy_resolves():
    s = ProxySettings(acl="acl inside dst 10.3.0.0/24\nhttp_access deny inside\nhttp_access allow all", stock=False)
    table = {"o1": "10.3.0.11", "gw1": "10.2.0.2"}
    with pytest.raises(Refusal):
        admit(exact("GET http://o1/ HTTP/1.1", "Host: o1"), "10.1.0.101", "fp1", s.policy(), {}, s.realm, resolve=table.get)
    assert admit(exact("GET http://gw1/ HTTP/1.1", "Host: gw1"), "10.1.0.101", "fp1", s.policy(), {}, s.realm, resolve=table.get)


def test_the_stock_rules_are_the_default_and_never_an_open_proxy():
    s = ProxySettings()
    for client in ("203.0.113.9", "8.8.8.8"):  # outside every local network: refused, plain and CONNECT alike
        for line in ("GET http://gw1/ HTTP/1.1", "CONNECT gw1:443 HTTP/1.1"):
            with pytest.raises(Refusal):
                admit(exact(line, "Host: gw1" if "GET" in line else "Host: gw1:443"), client, "fp1", s.policy(), {}, s.realm)
    for port, rule in ((25, "deny !Safe_ports"), (8080, "deny CONNECT !SSL_ports")):  # CONNECT only to 443, for everyone
        with pytest.raises(Refusal) as e:
            admit(exact(f"CONNECT gw1:{port} HTTP/1.1", f"Host: gw1:{port}"), "10.1.0.101", "fp1", s.policy(), {}, s.realm)
        assert rule in e.value.message
    assert admit(exact("CONNECT gw1:443 HTTP/1.1", "Host: gw1:443"), "10.1.0.101", "fp1", s.policy(), {}, s.realm)[0].port == 443


def test_a_typo_in_the_rules_is_an_error_naming_the_line():
    with pytest.raises(ValueError, match=r"line 2: no acl named 'staf'.*did you mean 'staff'"):
        ProxySettings(acl="acl staff src 10.1.0.0/24\nhttp_access allow staf", stock=False)
    with pytest.raises(ValueError, match="has no ':'"):
        ProxySettings(users={"a:b": "c"})
