"""VRRPv3 election with exact times (RFC 5798), and the wire format against Scapy's."""
import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRPv3

from lab.core import vrrp_packet as wire
from lab.core.vrrp import (
    BACKUP,
    DROP_VIP,
    GARP_REFRESH,
    INIT,
    MASTER,
    SEND_ADVERT,
    SEND_GARP,
    TAKE_VIP,
    IllegalTransition,
    Vrrp,
    VrrpSettings,
    diagram,
    master_down_interval,
    skew_time,
)


def kinds(actions):
    return [a.kind for a in actions]


def router(priority=100, interval=1.0, preempt=True, address="10.0.0.2"):
    return Vrrp(VrrpSettings(vrid=51, priority=priority, advert_interval=interval, preempt=preempt, address=address))


def test_rfc_timers():
    assert skew_time(100, 1.0) == pytest.approx(156 / 256)
    assert master_down_interval(100, 1.0) == pytest.approx(3 + 156 / 256)  # keepalived v2 default: 3.61 s
    assert master_down_interval(100, 0.1) == pytest.approx(0.3 + 0.0609375)  # ~0.36 s with 0.1 s adverts
    assert master_down_interval(254, 1.0) < master_down_interval(1, 1.0)


def test_backup_takes_over_exactly_at_master_down_interval():
    r = router(priority=100)
    assert r.start(0.0) == [] and r.state == BACKUP
    assert r.tick(3.6) == [] and r.state == BACKUP
    actions = r.tick(3.61)
    assert r.state == MASTER and kinds(actions) == [TAKE_VIP, SEND_GARP, SEND_ADVERT]
    assert r.changes[-1].before == BACKUP and "Master_Down_Interval 3.609" in r.changes[-1].reason


def test_adverts_keep_a_backup_down_and_the_master_advertises_on_time():
    b = router(priority=100, interval=0.1)
    b.start(0.0)
    for t in (0.1, 0.2, 0.3, 0.4):
        b.advert(t, 200, "10.0.0.3", 0.1)
        assert b.tick(t + 0.35) == []
    assert b.master == "10.0.0.3"
    m = router(priority=255, interval=0.1)
    assert kinds(m.start(0.0)) == [TAKE_VIP, SEND_GARP, SEND_ADVERT]
    assert m.tick(0.05) == [] and kinds(m.tick(0.1)) == [SEND_ADVERT] and m.next_deadline() == pytest.approx(0.2)


def test_a_master_with_garp_refresh_repeats_its_gratuitous_arp_and_stops_when_it_yields():
    m = Vrrp(VrrpSettings(vrid=51, priority=255, advert_interval=1.0, address="10.0.0.2", garp_refresh=2.5))
    assert kinds(m.start(0.0)) == [TAKE_VIP, SEND_GARP, SEND_ADVERT]
    assert m.next_deadline() == pytest.approx(1.0)
    assert kinds(m.tick(1.0)) == [SEND_ADVERT] and kinds(m.tick(2.0)) == [SEND_ADVERT]
    assert m.next_deadline() == pytest.approx(2.5)
    refresh = m.tick(2.5)
    assert kinds(refresh) == [SEND_GARP] and refresh[0].reason == GARP_REFRESH
    assert [kinds(m.tick(t)) for t in (3.0, 4.0, 5.0)] == [[SEND_ADVERT], [SEND_ADVERT], [SEND_GARP, SEND_ADVERT]]
    m.advert(5.5, 255, "10.0.0.9", 1.0)  # an equal priority from a higher address: it yields
    assert m.state == BACKUP and m.garp_at is None
    plain = router(priority=255)
    plain.start(0.0)
    assert all(SEND_GARP not in kinds(plain.tick(float(t))) for t in range(1, 30))  # default 0: only when taking the VIP


def test_priority_zero_means_take_over_after_skew_time():
    b = router(priority=100, interval=1.0)
    b.start(0.0)
    b.advert(1.0, 0, "10.0.0.3", 1.0)
    assert b.tick(1.0 + 156 / 256 - 0.001) == []
    assert kinds(b.tick(1.0 + 156 / 256)) == [TAKE_VIP, SEND_GARP, SEND_ADVERT]


def test_graceful_shutdown_sends_priority_zero_and_drops_the_vip():
    m = router(priority=255)
    m.start(0)
    actions = m.shutdown(5.0)
    assert [(a.kind, a.priority) for a in actions] == [(SEND_ADVERT, 0), (DROP_VIP, 0)] and m.state == INIT


def test_preempt_lower_master_is_ignored_and_then_replaced():
    b = router(priority=200, preempt=True)
    b.start(0.0)
    b.advert(1.0, 100, "10.0.0.3", 1.0)  # lower priority: not reset
    assert b.state == BACKUP and kinds(b.tick(master_down_interval(200, 1.0))) == [TAKE_VIP, SEND_GARP, SEND_ADVERT]


def test_nopreempt_backup_accepts_a_lower_master():
    b = router(priority=200, preempt=False)
    b.start(0.0)
    for t in range(1, 10):
        b.advert(float(t), 100, "10.0.0.3", 1.0)
        assert b.tick(t + 0.5) == []
    assert b.state == BACKUP


def test_master_yields_to_higher_priority_and_to_higher_address_on_ties():
    m = router(priority=100, address="10.0.0.2")
    m.start(0)
    m.tick(10)
    assert m.state == MASTER
    # a lower-priority master is answered (advert + GARP, as keepalived), not obeyed
    assert kinds(m.advert(11, 50, "10.0.0.9", 1.0)) == [SEND_ADVERT, SEND_GARP] and m.state == MASTER
    # yielding, it advertises once more (keepalived vrrp_higher_prio_send_advert), then drops the VIP
    assert kinds(m.advert(12, 100, "10.0.0.9", 1.0)) == [SEND_ADVERT, DROP_VIP] and m.state == BACKUP
    m2 = router(priority=100, address="10.0.0.9")
    m2.start(0), m2.tick(10)
    assert kinds(m2.advert(11, 100, "10.0.0.2", 1.0)) == [SEND_ADVERT, SEND_GARP] and m2.state == MASTER


def test_backup_learns_the_masters_interval():
    b = router(priority=100, interval=1.0)
    b.start(0)
    b.advert(1.0, 150, "10.0.0.3", 0.1)
    assert b.master_adver_interval == 0.1 and b.master_down_at == pytest.approx(1.0 + master_down_interval(100, 0.1))


def test_tracking_lowers_priority_and_tells_the_backups():
    m = router(priority=150)
    m.start(0), m.tick(10)
    assert [(a.kind, a.priority) for a in m.set_priority(90, 11)] == [(SEND_ADVERT, 90)]
    with pytest.raises(ValueError):
        m.set_priority(255, 12)


def test_illegal_events_name_state_and_event():
    with pytest.raises(IllegalTransition, match="no transition from INIT on 'shutdown'"):
        router().shutdown(0)
    assert "MASTER on advert" in diagram()


def test_bad_settings():
    with pytest.raises(ValueError, match="priority"):
        VrrpSettings(priority=0)
    with pytest.raises(ValueError, match="advert_interval"):
        VrrpSettings(advert_interval=0.001)


def test_wire_format_matches_scapy_both_ways():
    from scapy.packet import Raw

    ours = wire.encode(wire.Advert(51, 150, 0.1, ("10.0.0.1",)), "10.0.0.2")
    parsed = IP(bytes(IP(src="10.0.0.2", dst="224.0.0.18", proto=112, ttl=255) / Raw(ours)))[VRRPv3]
    assert (parsed.version, parsed.type, parsed.vrid, parsed.priority, parsed.adv, parsed.addrlist) == (3, 1, 51, 150, 10, ["10.0.0.1"])
    rebuilt = IP(src="10.0.0.2", dst="224.0.0.18", ttl=255) / VRRPv3(vrid=51, priority=150, adv=10, ipcount=1, addrlist=["10.0.0.1"])
    assert bytes(IP(bytes(rebuilt))[VRRPv3]) == ours  # same bytes, checksum included
    theirs = bytes(IP(src="10.0.0.3", dst="224.0.0.18", ttl=255) / VRRPv3(vrid=7, priority=200, adv=100, ipcount=1, addrlist=["10.0.0.1"]))
    src, ttl, advert = wire.decode_ip(theirs)
    assert (src, ttl, advert) == ("10.0.0.3", 255, wire.Advert(7, 200, 1.0, ("10.0.0.1",)))


def test_bad_adverts_are_named():
    good = wire.encode(wire.Advert(51, 150, 1.0, ("10.0.0.1",)), "10.0.0.2")
    with pytest.raises(wire.BadAdvert, match="bad checksum"):
        wire.decode(good[:7] + b"\x00" + good[8:], "10.0.0.2")
    with pytest.raises(wire.BadAdvert, match="version 2"):
        wire.decode(b"\x21" + good[1:], "10.0.0.2")
    with pytest.raises(wire.BadAdvert, match="shorter"):
        wire.decode(b"\x31", "10.0.0.2")


def test_garp_frame():
    frame = Ether(wire.garp("00:00:00:00:00:02", "10.0.0.1"))
    # an ARP announcement (RFC 5227): a request, sender = target address, target MAC zero. Linux
    # takes only this (or a reply whose target MAC is its sender MAC) as gratuitous and updates a
    # busy neighbour entry at once; the earlier broadcast-target reply waited out locktime forever.
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame[ARP].op == 1
    assert frame[ARP].psrc == frame[ARP].pdst == "10.0.0.1" and frame[ARP].hwsrc == "00:00:00:00:00:02"
    assert frame[ARP].hwdst == "00:00:00:00:00:00"


def test_takeover_reasons_say_what_was_heard():
    r = router(priority=100, interval=0.1)
    r.start(0.0)
    r.tick(1.0)
    assert r.changes[-1].reason.startswith("no advert since startup")
    b = router(priority=200, interval=0.1)
    b.start(0.0)
    b.advert(0.2, 100, "10.0.0.3", 0.1)
    b.tick(master_down_interval(200, 0.1))
    assert b.changes[-1].reason.startswith("only adverts of lower priority (preempt)")


def test_preempt_delay_holds_back_a_returning_higher_priority_router():
    # keepalived preempt_delay: the wait for a lower-priority master grows by the delay,
    # counted from when that master was first heard; without it the backup preempts at
    # Master_Down_Interval as before.
    for delay, expected in ((0.0, 0.35), (2.0, 2.45)):  # 0.1 + 0.3414 + 2 s, on a 10 ms tick
        r = Vrrp(VrrpSettings(vrid=51, priority=150, advert_interval=0.1, preempt=True, address="10.0.0.2", preempt_delay=delay))
        r.start(0.0)
        t, took = 0.0, None
        while took is None and t < 5:
            t = round(t + 0.01, 2)
            if round(t * 100) % 10 == 0:
                r.advert(t, 100, "10.0.0.3", 0.1)  # the lower-priority master keeps advertising
            if r.tick(t):
                took = t
        assert took == expected and r.state == MASTER


def test_preempt_delay_is_bounded_like_keepalived():
    with pytest.raises(ValueError, match="preempt_delay"):
        VrrpSettings(preempt_delay=1001)


def test_a_master_that_hears_a_lower_priority_master_reasserts_itself_with_garp():
    # A healed split brain: both are MASTER; the winner advertises and sends GARP at once
    # (keepalived's defaults), so the loser yields and the clients' ARP caches follow.
    m = router(priority=150, interval=0.1)
    m.start(0.0)
    m.tick(0.4)
    assert m.state == MASTER
    assert kinds(m.advert(5.0, 100, "10.0.0.3", 0.1)) == [SEND_ADVERT, SEND_GARP]
    assert m.advert(5.1, 100, "10.0.0.3", 0.1) == []  # not a storm: once a second at most
    assert kinds(m.advert(6.2, 100, "10.0.0.3", 0.1)) == [SEND_ADVERT, SEND_GARP]
    assert m.state == MASTER


def test_a_master_woken_late_keeps_its_adverts_on_the_grid():
    m = router(priority=255, interval=0.03)
    m.start(0.0)
    sent = []
    now = 0.0
    for _ in range(100):  # every wake 1 ms after the deadline, as a loop with millisecond timers may be
        now = m.next_deadline() + 0.001
        if m.tick(now):
            sent.append(now)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert max(gaps) == pytest.approx(0.03) and sent[-1] == pytest.approx(100 * 0.03 + 0.001)  # no drift: 100 adverts in 3 s
    # frozen for a second (SIGSTOP): one advert on waking, then a new grid from there, not a burst of 33
    late = m.next_deadline() + 1.0
    assert kinds(m.tick(late)) == [SEND_ADVERT] and m.tick(late + 0.001) == [] and m.next_deadline() == pytest.approx(late + 0.03)


def test_keepalived_gets_the_same_garp_refresh_in_whole_seconds():
    from lab.net.render import keepalived_config

    base = ("gw2", "gw2-eth0", "10.0.0.1", 51, 100, 0.1, True, 0, 0)
    assert "garp_master_refresh" not in keepalived_config(*base)
    assert "    garp_master_refresh 1\n" in keepalived_config(*base, garp_refresh=0.4)  # keepalived counts whole seconds
    assert "    garp_master_refresh 3\n" in keepalived_config(*base, garp_refresh=3.0)
