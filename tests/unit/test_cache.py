"""The shared cache's decisions (lab.core.cache), with exact times: RFC 9111 and RFC 5861, no I/O."""
import email.utils

import pytest

from lab.core import cache as c

S = c.CacheSettings(enabled=True)
NOW = 1_800_000_000.0


def date(t):
    return email.utils.formatdate(t, usegmt=True)


def answer(*headers, status=200):
    return status, [("Date", date(NOW)), *headers]


def stored(cache, *headers, key="h/a", request=(), status=200, body=b"x" * 10, at=NOW):
    return cache.store(key, status, "OK", list(request), [("Date", date(at)), *headers], body, at, at)


# ---- what may be stored -----------------------------------------------------------------
@pytest.mark.parametrize("method, status, req, response, ok", [
    ("GET", 200, [], [("Cache-Control", "max-age=60")], True),
    ("HEAD", 200, [], [("Cache-Control", "max-age=60")], False),
    ("POST", 200, [], [("Cache-Control", "max-age=60")], False),
    ("GET", 206, [], [("Cache-Control", "max-age=60")], False),
    ("GET", 304, [], [("Cache-Control", "max-age=60")], False),
    ("GET", 500, [], [("Cache-Control", "max-age=60")], True),  # explicit freshness: any final status
    ("GET", 500, [], [("Last-Modified", date(NOW - 1000))], False),  # but not heuristically
    ("GET", 404, [], [("Last-Modified", date(NOW - 1000))], True),
    ("GET", 200, [], [], False),  # nothing makes it reusable
    ("GET", 200, [], [("Cache-Control", "max-age=60, no-store")], False),
    ("GET", 200, [("Cache-Control", "no-store")], [("Cache-Control", "max-age=60")], False),
    ("GET", 200, [], [("Cache-Control", "private, max-age=60")], False),
    ("GET", 200, [], [("Cache-Control", 'private="Set-Cookie", max-age=60')], True),  # qualified: only that header is private
    ("GET", 200, [("Authorization", "Basic x")], [("Cache-Control", "max-age=60")], False),
    ("GET", 200, [("Authorization", "Basic x")], [("Cache-Control", "public, max-age=60")], True),
    ("GET", 200, [("Authorization", "Basic x")], [("Cache-Control", "s-maxage=60")], True),
    ("GET", 200, [], [("Cache-Control", "max-age=60"), ("Vary", "*")], False),
    ("GET", 599, [], [("Cache-Control", "max-age=60, must-understand")], False),
    ("GET", 200, [], [("Cache-Control", "max-age=60, must-understand, no-store")], True),  # understood: no-store yields
    ("GET", 200, [], [("Expires", date(NOW + 60))], True),
    ("GET", 200, [], [("Cache-Control", "max-age=60"), ("Set-Cookie", "session=alice")], False),  # one user's
    ("GET", 200, [], [("Cache-Control", "public, max-age=60"), ("Set-Cookie", "a=b")], True),
    ("GET", 200, [], [("Cache-Control", 'max-age=60, no-cache="Set-Cookie"'), ("Set-Cookie", "a=b")], True),  # stripped
    ("GET", 200, [], [("Cache-Control", "private, max-age=60")], False),  # /account/profile.css: cache deception foiled
])
def test_what_a_shared_cache_may_store(method, status, req, response, ok):
    why = c.storable(method, status, req, response)
    assert (why is None) == ok, why


def test_headers_that_must_not_be_stored_are_dropped():
    kept = c.stored_headers([("Connection", "X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "5"), ("Proxy-Authenticate", "Basic"),
                             ("Cache-Control", 'no-cache="Set-Cookie", max-age=5'), ("Set-Cookie", "a=b"), ("ETag", '"1"')])
    assert [k for k, _ in kept] == ["Cache-Control", "ETag"]


# ---- freshness and age --------------------------------------------------------------------
@pytest.mark.parametrize("headers, lifetime", [
    ([("Cache-Control", "max-age=60")], 60),
    ([("Cache-Control", "max-age=60, s-maxage=10")], 10),  # a shared cache takes s-maxage
    ([("Cache-Control", "max-age=060")], 60),
    ([("Cache-Control", 'max-age="60"')], 60),
    ([("Cache-Control", "max-age=-1")], 0),
    ([("Cache-Control", "max-age=1.5")], 0),
    ([("Cache-Control", "max-age=60"), ("Cache-Control", "max-age=30")], 0),  # conflicting: taken as stale
    ([("Cache-Control", "max-age=99999999999")], 2**31),
    ([("Expires", date(NOW + 100))], 100),
    ([("Expires", "0")], 0),  # invalid Expires: already expired
    ([("Expires", date(NOW + 100)), ("Cache-Control", "max-age=5")], 5),  # max-age wins over Expires
    ([("Last-Modified", date(NOW - 10000))], 1000),  # heuristic: 10 % of the time since Last-Modified
])
def test_freshness_lifetime(headers, lifetime):
    assert c.freshness_lifetime(200, [("Date", date(NOW)), *headers], NOW, S) == pytest.approx(lifetime)


def test_heuristic_share_and_cap_follow_the_settings():
    squid = c.CacheSettings(heuristic_percent=20, heuristic_max=4320 * 60)
    assert c.freshness_lifetime(200, [("Date", date(NOW)), ("Last-Modified", date(NOW - 10000))], NOW, squid) == pytest.approx(2000)
    short = c.CacheSettings(heuristic_max=60)
    assert c.freshness_lifetime(200, [("Date", date(NOW)), ("Last-Modified", date(NOW - 10000))], NOW, short) == 60


def test_current_age_follows_rfc_9111_4_2_3():
    e = c.Entry("k", 200, "OK", [("Date", date(NOW - 10)), ("Age", "30")], b"", request_time=NOW - 2, response_time=NOW)
    # apparent age 10; corrected age 30 + 2 s of response delay = 32; then resident time
    assert e.current_age(NOW) == pytest.approx(32)
    assert e.current_age(NOW + 5) == pytest.approx(37)


@pytest.mark.parametrize("values, age", [(["7200"], 7200), (["7200.0"], 7200), (["7200;foo=1"], 7200), (["0,7200"], 0),
                                         (["7200", "0"], 7200), (["abc"], 2**31), (["-5"], 2**31), ([], 0)])
def test_the_age_an_answer_arrived_with(values, age):
    assert c.age_header(values) == age


# ---- reuse --------------------------------------------------------------------------------
def test_fresh_then_stale_then_validated():
    cache = c.Cache(S)
    stored(cache, ("Cache-Control", "max-age=60"), ("ETag", '"v1"'))
    assert cache.lookup("h/a", "GET", [], NOW + 59).result == c.FRESH
    stale = cache.lookup("h/a", "GET", [], NOW + 61)
    assert stale.result == c.VALIDATE and stale.entry.validators() == [("If-None-Match", '"v1"')]
    assert cache.lookup("h/other", "GET", [], NOW).result == c.MISS


def test_the_requests_own_directives():
    cache = c.Cache(S)
    stored(cache, ("Cache-Control", "max-age=60"))
    assert cache.lookup("h/a", "GET", [("Cache-Control", "no-cache")], NOW).result == c.VALIDATE
    assert cache.lookup("h/a", "GET", [("Pragma", "no-cache")], NOW).result == c.VALIDATE
    assert cache.lookup("h/a", "GET", [("Pragma", "no-cache"), ("Cache-Control", "max-age=100")], NOW).result == c.FRESH
    assert cache.lookup("h/a", "GET", [("Cache-Control", "max-age=10")], NOW + 20).result == c.VALIDATE
    assert cache.lookup("h/a", "GET", [("Cache-Control", "min-fresh=50")], NOW + 20).result == c.VALIDATE
    assert cache.lookup("h/a", "GET", [("Cache-Control", "max-stale=30")], NOW + 80).result == c.STALE_OK
    assert cache.lookup("h/a", "GET", [("Cache-Control", "max-stale")], NOW + 8000).result == c.STALE_OK
    assert cache.lookup("h/a", "GET", [("Cache-Control", "max-stale=5")], NOW + 80).result == c.VALIDATE


def test_no_cache_answers_are_stored_but_always_validated():
    cache = c.Cache(S)
    stored(cache, ("Cache-Control", "no-cache, max-age=60"), ("ETag", '"1"'))
    assert cache.lookup("h/a", "GET", [], NOW).result == c.VALIDATE


def test_must_revalidate_forbids_max_stale_and_stale_while_revalidate():
    cache = c.Cache(S)
    stored(cache, ("Cache-Control", "max-age=10, must-revalidate, stale-while-revalidate=100"))
    assert cache.lookup("h/a", "GET", [("Cache-Control", "max-stale")], NOW + 20).result == c.VALIDATE
    assert not cache.may_serve_stale_on_error(cache.entries["h/a"][0], [("Cache-Control", "stale-if-error=100")], NOW + 20)


def test_stale_while_revalidate_and_stale_if_error_windows():
    cache = c.Cache(S)
    e = stored(cache, ("Cache-Control", "max-age=10, stale-while-revalidate=20, stale-if-error=60"))
    assert cache.lookup("h/a", "GET", [], NOW + 25).result == c.STALE_OK
    assert cache.lookup("h/a", "GET", [], NOW + 31).result == c.VALIDATE
    assert cache.may_serve_stale_on_error(e, [], NOW + 69) and not cache.may_serve_stale_on_error(e, [], NOW + 71)
    plain = stored(cache, ("Cache-Control", "max-age=10"), key="h/b")
    assert not cache.may_serve_stale_on_error(plain, [], NOW + 11)
    assert cache.may_serve_stale_on_error(plain, [("Cache-Control", "stale-if-error=30")], NOW + 11)  # the request may ask


def test_vary_keys_variants_and_star_never_matches():
    cache = c.Cache(S)
    stored(cache, ("Cache-Control", "max-age=60"), ("Vary", "Accept-Language"), request=[("Accept-Language", "en")], body=b"en")
    stored(cache, ("Cache-Control", "max-age=60"), ("Vary", "Accept-Language"), request=[("Accept-Language", "ko")], body=b"ko")
    assert cache.lookup("h/a", "GET", [("Accept-Language", "ko")], NOW).entry.body == b"ko"
    assert cache.lookup("h/a", "GET", [("Accept-Language", "en")], NOW).entry.body == b"en"
    assert cache.lookup("h/a", "GET", [], NOW).result == c.MISS  # absent is a value of its own
    assert cache.lookup("h/a", "GET", [("Accept-Language", "de")], NOW).result == c.MISS
    stored(cache, ("Cache-Control", "max-age=60"), ("Vary", "A, B"), request=[("A", "1, 2")], key="h/w")
    assert cache.lookup("h/w", "GET", [("A", "1,2")], NOW).result == c.FRESH  # whitespace around commas does not count


def test_a_304_refreshes_headers_but_not_those_describing_the_stored_bytes():
    cache = c.Cache(S)
    e = stored(cache, ("Cache-Control", "max-age=10"), ("ETag", '"a"'), ("Content-Encoding", "gzip"), ("X-Old", "1"))
    cache.refreshed(e, [("Cache-Control", "max-age=100"), ("ETag", '"b"'), ("Content-Encoding", "br"), ("X-New", "2")], NOW + 20, NOW + 20)
    got = dict(e.headers)
    assert got["Cache-Control"] == "max-age=100" and got["X-New"] == "2" and got["X-Old"] == "1"
    assert got["ETag"] == '"a"' and got["Content-Encoding"] == "gzip"
    assert cache.lookup("h/a", "GET", [], NOW + 50).result == c.FRESH  # its clock restarted at the 304


def test_unsafe_methods_invalidate_the_uri_and_same_host_locations():
    assert c.invalidates("POST", 201) and c.invalidates("DELETE", 204) and not c.invalidates("POST", 500)
    assert not c.invalidates("GET", 200)
    keys = c.related_keys("h", "/a", [("Location", "/b"), ("Content-Location", "http://h/c"), ("Content-Location", "x")])
    assert keys == ["h/a", "h/b", "h/c"]
    assert c.related_keys("h", "/a", [("Location", "http://other/b")]) == ["h/a"]
    cache = c.Cache(S)
    stored(cache, ("Cache-Control", "max-age=60"))
    stored(cache, ("Cache-Control", "max-age=60"), key="h/b")
    assert cache.invalidate("h/a", "h/b", "h/zz") == 2 and cache.bytes == 0


def test_lru_eviction_by_bytes_and_the_object_limit():
    small = c.Cache(c.CacheSettings(enabled=True, max_bytes=1200, max_object=600))
    for k in ("h/1", "h/2", "h/3"):
        stored(small, ("Cache-Control", "max-age=60"), key=k, body=b"x" * 400)
        small.lookup("h/1", "GET", [], NOW)  # h/1 stays the most recently used
    assert set(small.entries) == {"h/1", "h/3"} and small.bytes <= 1200
    assert stored(small, ("Cache-Control", "max-age=60"), key="h/big", body=b"x" * 700) is None


def test_the_clients_own_condition_is_answered_from_the_copy():
    e = c.Entry("k", 200, "OK", [("ETag", 'W/"v1"'), ("Last-Modified", date(NOW - 100))], b"", NOW, NOW)
    assert c.not_modified([("If-None-Match", '"v0", "v1"')], e)  # weak comparison
    assert not c.not_modified([("If-None-Match", '"v2"')], e)
    assert c.not_modified([("If-Modified-Since", date(NOW - 50))], e)
    assert not c.not_modified([("If-Modified-Since", date(NOW - 500))], e)
    assert not c.not_modified([], e)


def test_directives_parse_quoted_commas_and_case():
    assert c.directives(['No-Cache="Set-Cookie, X", Max-Age=5', "public"]) == {"no-cache": "Set-Cookie, X", "max-age": "5",
                                                                              "public": None}


def test_one_resource_one_key_whatever_the_spelling():
    assert c.cache_key("Site", "/a") == c.cache_key("site", "/%61") == c.cache_key("x", "http://SITE/a") == "site/a"
    assert c.cache_key("site", "/a%2fb") == "site/a%2Fb"  # a reserved character stays escaped (it means something else)
    assert c.cache_key("site", "/a%zz") == "site/a%zz" and c.cache_key("site", "/a%4") == "site/a%4"
    assert c.cache_key("site", "http://site") == "site/"
