"""Squid's access rules (lab.core.acl): every acl type, the order rules, the stock rules, and clear errors."""
import ipaddress
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.core.acl import ALLOWED, AUTH_REQUIRED, DENIED, AclError, Request, parse, stock

SAFE_PORTS = {80, 21, 443, 70, 210, 280, 488, 591, 777} | set(range(1025, 65536))


def req(src="10.0.0.101", method="GET", url="http://www.example.com/", host="www.example.com", port=80, **kw):
    return Request(src, method, url, host, port, **kw)


def status(rules, request):
    return parse(rules).check(request).status


def test_first_match_wins_and_acls_on_a_line_are_anded():
    rules = "acl lan src 10.0.0.0/24\nacl web port 80\nhttp_access allow lan web\nhttp_access deny all"
    assert status(rules, req()) == ALLOWED
    assert status(rules, req(port=8080)) == DENIED
    assert status(rules, req(src="10.0.1.5")) == DENIED
    decision = parse(rules).check(req(port=8080))
    assert decision.rule == "http_access deny all" and decision.number == 4 and "line 4" in decision.explain()


def test_no_line_matching_means_the_opposite_of_the_last_and_no_lines_deny():
    assert status("acl lan src 10.0.0.0/24\nhttp_access deny lan", req(src="192.168.1.1")) == ALLOWED
    assert status("acl lan src 10.0.0.0/24\nhttp_access allow lan", req(src="192.168.1.1")) == DENIED
    assert status("", req()) == DENIED
    assert "no http_access lines" in parse("").check(req()).rule


def test_negation_and_values_of_one_acl_are_ored_also_across_lines():
    rules = "acl ok port 80\nacl ok port 443\nhttp_access deny !ok\nhttp_access allow all"
    assert [status(rules, req(port=p)) for p in (80, 443, 25)] == [ALLOWED, ALLOWED, DENIED]


@pytest.mark.parametrize("value, inside, outside", [
    ("10.0.0.0/8", "10.9.9.9", "11.0.0.1"), ("10.0.0.5", "10.0.0.5", "10.0.0.6"), ("10.0.0.5-10.0.0.9", "10.0.0.7", "10.0.0.10"),
    ("fc00::/7", "fd00::1", "10.0.0.1"),
])
def test_src_takes_addresses_blocks_and_ranges(value, inside, outside):
    rules = f"acl a src {value}\nhttp_access allow a\nhttp_access deny all"
    assert status(rules, req(src=inside)) == ALLOWED and status(rules, req(src=outside)) == DENIED


def test_dst_uses_the_destination_address_or_a_numeric_host():
    rules = "acl inside dst 10.2.0.0/16\nhttp_access deny inside\nhttp_access allow all"
    assert status(rules, req(host="o1", dst="10.2.0.11")) == DENIED
    assert status(rules, req(host="10.2.0.11", url="http://10.2.0.11/")) == DENIED
    assert status(rules, req(host="www.example.com", dst=None)) == ALLOWED  # unknown address: no match


def test_dstdomain_with_a_dot_covers_subdomains():
    rules = "acl news dstdomain .example.com\nacl one dstdomain exact.org\nhttp_access deny news\nhttp_access deny one\nhttp_access allow all"
    for host, expected in [("example.com", DENIED), ("www.EXAMPLE.com.", DENIED), ("badexample.com", ALLOWED),
                           ("exact.org", DENIED), ("www.exact.org", ALLOWED)]:
        assert status(rules, req(host=host)) == expected, host


def test_port_ranges_method_and_the_predefined_connect():
    rules = "acl high port 1025-65535\nacl posts method POST\nhttp_access deny posts\nhttp_access deny CONNECT high\nhttp_access allow all"
    assert status(rules, req(method="POST")) == DENIED
    assert status(rules, req(method="CONNECT", port=8443, url="x:8443")) == DENIED
    assert status(rules, req(method="CONNECT", port=443, url="x:443")) == ALLOWED


def test_url_regex_case_flags():
    rules = "acl bad url_regex -i \\.EXE$ +i /Secret/\nhttp_access deny bad\nhttp_access allow all"
    assert status(rules, req(url="http://x/setup.exe")) == DENIED
    assert status(rules, req(url="http://x/Secret/a")) == DENIED
    assert status(rules, req(url="http://x/secret/a")) == ALLOWED


def test_proxy_auth_asks_for_credentials_then_matches_users():
    rules = "acl staff proxy_auth alice bob\nacl anyone proxy_auth REQUIRED\nhttp_access allow staff\nhttp_access deny all"
    assert status(rules, req()) == AUTH_REQUIRED  # no credentials: 407, Proxy-Authenticate
    assert status(rules, req(user="alice")) == ALLOWED
    assert status(rules, req(user="mallory")) == DENIED
    assert status("acl anyone proxy_auth REQUIRED\nhttp_access allow anyone", req(user="mallory")) == ALLOWED


def test_time_acl_days_and_spans():
    rules = "acl office time MTWHF 09:00-17:00\nhttp_access allow office\nhttp_access deny all"
    monday_10, monday_17, monday_18, saturday_10 = (datetime(2026, 11, 30, 10), datetime(2026, 11, 30, 17), datetime(2026, 11, 30, 18),
                                                    datetime(2026, 11, 28, 10))
    assert [status(rules, req(when=w)) for w in (monday_10, monday_17, monday_18, saturday_10)] == [ALLOWED, ALLOWED, DENIED, DENIED]
    assert status("acl wk time D\nhttp_access allow wk\nhttp_access deny all", req(when=saturday_10)) == DENIED


def test_stock_rules_deny_unsafe_ports_and_connect_beyond_443_before_the_labs_own_rules():
    rules = stock("acl students src 10.0.0.0/24\nhttp_access allow students")
    assert status(rules, req(port=25)) == DENIED
    assert status(rules, req(method="CONNECT", port=22, url="x:22")) == DENIED
    assert status(rules, req(method="CONNECT", port=443, url="x:443")) == ALLOWED
    assert status(rules, req(src="203.0.113.9")) == DENIED  # never an open proxy
    assert status(rules, req(src="192.168.5.5")) == ALLOWED  # localnet, as in Squid's default
    assert parse(stock()).check(req(port=25)).rule == "http_access deny !Safe_ports"


@pytest.mark.parametrize("rules, says", [
    ("acl a srcc 10.0.0.0/8", "unknown acl type 'srcc'; did you mean 'src'?"),
    ("acl a src 10.0.0.0/33", "not an address"),
    ("acl a port 70000", "not a port range within 0-65535"),
    ("acl a port http", "not a port"),
    ("acl a time 9-17", "neither day letters"),
    ("acl a url_regex (", "not a regular expression"),
    ("acl a src", "needs a name, a type and at least one value"),
    ("http_access allow lann", "no acl named 'lann'"),
    ("http_access permit all", "allow|deny"),
    ("acl all src 10.0.0.0/8", "predefined"),
    ("acl a src 10.0.0.1\nacl a port 80", "one acl has one type"),
    ("http_acces allow all", "did you mean 'http_access'?"),
])
def test_mistakes_name_the_line_and_what_is_wrong(rules, says):
    with pytest.raises(AclError, match=says.replace("(", "\\(").replace("?", "\\?").replace("|", "\\|")):
        parse(rules)


def test_comments_and_blank_lines_are_ignored_and_line_numbers_kept():
    decision = parse("# staff only\n\nacl lan src 10.0.0.0/8  # the lab\nhttp_access allow lan\n").check(req())
    assert decision.allowed and decision.number == 4


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=65535), st.sampled_from(["GET", "POST", "CONNECT", "HEAD"]))
def test_the_stock_rules_are_never_an_open_proxy(ip, port, method):
    decision = parse(stock()).check(req(src=str(ip), port=port, method=method))
    if decision.allowed:
        assert ip.is_private or ip.is_loopback or ip in ipaddress.ip_network("100.64.0.0/10")  # localnet or localhost only
        assert port in SAFE_PORTS and (method != "CONNECT" or port == 443)


def test_remembered_decisions_follow_the_clock_when_a_time_acl_exists():
    timed = parse("acl office time MTWHF 09:00-17:00\nhttp_access allow office\nhttp_access deny all")
    monday_morning, monday_night = datetime(2026, 11, 30, 10, 0), datetime(2026, 11, 30, 20, 0)
    assert timed.check(req(when=monday_morning)).status == ALLOWED
    assert timed.check(req(when=monday_night)).status == DENIED  # not the remembered answer of the morning
    plain = parse("acl staff src 10.0.0.101\nhttp_access allow staff\nhttp_access deny all")
    assert plain.check(req()).status == ALLOWED and plain.check(req(src="10.0.0.102")).status == DENIED
    assert len(plain.memory) == 2
