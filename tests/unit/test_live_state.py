from lab.analysis.live_state import LiveState


def ev(t, kind, **kw):
    return {"t": t, "kind": kind, "node": kw.pop("node", "lb1"), **kw}


def test_vip_holders_and_split_brain():
    st = LiveState()
    st.feed(ev(1, "vrrp_state_changed", node="gw1", vip="10.0.0.1", before="BACKUP", after="MASTER"))
    st.feed(ev(1, "vrrp_state_changed", node="gw2", vip="10.0.0.1", before="INIT", after="BACKUP"))
    assert st.vip_holders() == {"10.0.0.1": ["gw1"]}
    line = st.feed(ev(2, "vrrp_state_changed", node="gw2", vip="10.0.0.1", before="BACKUP", after="MASTER", reason="no advert"))
    assert st.vip_holders() == {"10.0.0.1": ["gw1", "gw2"]}
    assert "gw2: VRRP BACKUP -> MASTER for 10.0.0.1" in line


def test_health_labels_and_recent_success():
    st = LiveState()
    st.feed(ev(0, "load_started"))
    st.feed(ev(0.5, "health_checked", server="o1", label="UP 2/3", result="fail", detail="timeout"))
    for i in range(10):
        st.feed(ev(1 + i / 10, "request_finished", ok=i % 2 == 0, latency=0.01, served_by="o2" if i % 2 == 0 else None, upstream="o1"))
    assert st.servers["o1"].label == "UP 2/3" and st.servers["o1"].failed == 5 and st.servers["o2"].served == 5
    assert st.now_figures(2.0)["success"] == 0.5


def test_heartbeat_age_is_kept_per_speaker():
    st = LiveState()
    st.feed(ev(1, "vrrp_heartbeat", node="gw2", vip="10.0.0.1", state="BACKUP", master="10.0.0.2", last_advert_age=0.04))
    assert st.advert_age[("gw2", "10.0.0.1")] == 0.04


def test_a_flood_of_refusals_is_one_ticker_line_and_a_hostile_traffic_line():
    st = LiveState()
    lines = [st.feed(ev(1 + i / 100, "request_rejected", client="10.0.0.9", status=408, reason="head_timeout", error="slow"))
             for i in range(50)]
    assert sum(line is not None for line in lines) == 1 and "408 head_timeout" in lines[0]
    st.feed(ev(1.6, "request_rejected", client="10.0.0.9", status=400, reason="smuggling", error="Connection names host"))
    assert st.hostile(1.7) == {"head_timeout": 50, "smuggling": 1} and st.refused_total == 51
    assert st.hostile(10.0) == {}  # the spike has passed
    st.feed(ev(20, "request_rejected", client="10.0.0.9", status=400, reason="malformed", error="x"))
    assert st.hostile(20.1) == {}  # one bad request is no spike


def test_a_failed_service_is_told():
    st = LiveState()
    line = st.feed(ev(1, "service_failed", node="gw1", task="timers", error="KeyError: 'x'"))
    assert "SERVICE FAILED in timers" in line


def test_a_service_that_exits_by_itself_is_told_as_a_failure():
    st = LiveState()
    line = st.feed(ev(1, "service_exited", node="lab", target="lb1", service="balancer", key="lb1-balancer", code=1, log="Traceback"))
    assert "SERVICE FAILED: lb1-balancer exited by itself with code 1" in line
