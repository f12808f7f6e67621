"""halab bench failover: trial timings follow the advert interval, and a trial without failover is never a 0 s outage."""
from lab.bench import FailoverTiming, failover_summary, judge_trial
from lab.core.vrrp import master_down_interval


def test_the_master_stays_off_longer_than_the_backup_needs_to_take_over():
    for interval in (1.0, 0.5, 0.1, 0.03, 0.02):
        t = FailoverTiming.of(interval)
        assert t.mdi == master_down_interval(100, interval) and t.hold >= t.mdi + 0.5
        assert t.settle > master_down_interval(150, interval)  # gw1 has preempted before the next cut


def requests(cut, fail_from, fail_to, rate=100):
    return [{"t": cut - 1 + i / rate, "ok": not (fail_from <= cut - 1 + i / rate < fail_to)} for i in range(int(8 * rate))]


def test_a_trial_with_a_takeover_measures_the_outage_the_clients_saw():
    t = FailoverTiming.of(0.1)
    judged = judge_trial(requests(10.0, 9.95, 10.30), [10.33], 10.0, t)
    assert judged["failover"] and abs(judged["takeover"] - 0.33) < 1e-9 and abs(judged["outage"] - 0.35) < 0.011


def test_a_trial_where_the_backup_never_took_over_is_reported_as_such():
    t = FailoverTiming.of(1.0)
    judged = judge_trial(requests(10.0, 10.0, 10.5), [10.0 + t.hold + 1.0], 10.0, t)  # took over only after gw1 was back
    assert judged == {"failover": False, "takeover": None, "outage": None, "failed": 50, "silence": None, "served_again": None}
    lines = failover_summary({1.0: {"halab": [judged], "keepalived": [judged]}})
    assert any("no failover in any trial" in line for line in lines)


def test_one_row_per_interval_and_speaker_and_a_verdict_per_interval():
    def rows(outage):
        return [{"failover": True, "takeover": 0.1, "outage": outage, "failed": 10} for _ in range(3)]
    lines = failover_summary({0.1: {"halab": rows(0.30), "keepalived": rows(0.31)}, 1.0: {"halab": rows(3.7), "keepalived": rows(3.5)}})
    assert [line.split()[0] for line in lines[1:5]] == ["1s", "1s", "0.1s", "0.1s"]  # longest interval first
    verdicts = lines[5:]
    assert verdicts[0].startswith("1 s: median outage: halab 3700.00 ms, keepalived 3500.00 ms, ratio 1.0571")
    assert verdicts[0].endswith("NOT met")
    assert verdicts[1].startswith("0.1 s: median outage: halab 300.00 ms, keepalived 310.00 ms, ratio 0.9677")
    assert verdicts[1].endswith(": met")


def test_false_failovers_under_advert_loss_get_their_own_line():
    rows = [{"failover": True, "takeover": 0.1, "outage": 0.1, "failed": 3}, {"false_failovers": 4, "seconds": 20.0, "loss": 30}]
    lines = failover_summary({0.03: {"halab": rows, "keepalived": rows}})
    assert sum("30 % of adverts lost at gw2: 4 false failovers in 20 s" in line for line in lines) == 2
    assert "1/1" in lines[1]  # the loss phase is not a trial


def test_counted_from_the_last_advert_the_luck_of_the_cut_is_gone():
    t = FailoverTiming.of(1.0)
    # the same backup behaviour (service again 3.7 s after the last advert), cut early and late in the interval
    early = judge_trial(requests(10.0, 10.0, 12.8), [12.75], 10.0, t, last_advert=9.1)
    late = judge_trial(requests(20.0, 20.0, 22.9), [22.85], 20.0, t, last_advert=19.2)
    assert round(early["outage"], 2) == 2.8 and round(late["outage"], 2) == 2.9
    assert round(early["silence"], 2) == round(late["silence"], 2) == 3.7
    rows = {"halab": [early], "keepalived": [dict(late, silence=3.8)]}
    verdict = failover_summary({1.0: rows})[-1]
    assert "median time from the last advert: halab 3700.00 ms, keepalived 3800.00 ms, ratio 0.9737" in verdict
    assert verdict.endswith(": met")


def test_with_a_capture_the_speakers_are_judged_on_the_wire_not_on_the_clients_cadence():
    def rows(timer, garp, outage):
        return [{"failover": True, "takeover": 0.36, "outage": outage, "failed": 30, "silence": outage + 0.05,
                 "steps": {"timer": timer, "garp": garp, "clients": 0.004}} for _ in range(5)]
    # halab announces 0.1 ms sooner; the clients' next request happened to fall 10 ms later for it
    sweep = {0.1: {"halab": rows(0.3611, 0.0001, 0.31), "keepalived": rows(0.3612, 0.0001, 0.30)}}
    lines = failover_summary(sweep)
    assert "(last advert to GARP 361.20 ms)" in lines[2] and "(last advert to GARP 361.30 ms)" in lines[4]
    verdict = lines[-1]
    assert "median time from the master's last advert to the backup's GARP, on the wire: halab 361.20 ms, keepalived 361.30 ms" in verdict
    assert "ratio 0.9997" in verdict and verdict.endswith(": met")
    slower = failover_summary({0.1: {"halab": rows(0.3613, 0.0001, 0.29), "keepalived": rows(0.3612, 0.0001, 0.30)}})[-1]
    assert "ratio 1.0003" in slower and slower.endswith("NOT met")  # even with the luckier clients


def test_the_capture_splits_a_takeover_into_its_steps(tmp_path):
    from scapy.layers.inet import IP
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap

    from lab.bench import takeover_steps, wire_times

    packets = [Ether() / IP(src="10.0.0.2", dst="224.0.0.18", proto=112),  # gw1's adverts, the second its last before the cut
               Ether() / IP(src="10.0.0.2", dst="224.0.0.18", proto=112),
               Ether() / IP(src="10.0.0.3", dst="224.0.0.18", proto=112),  # gw2 is MASTER: its first advert
               Ether() / ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.1"),  # ... and its gratuitous ARP for the VIP
               Ether() / ARP(op=1, psrc="10.0.0.101", pdst="10.0.0.1")]  # a client asking: not a GARP
    for p, t in zip(packets, (100.0, 100.1, 100.45, 100.452, 100.46)):
        p.time = t
    wrpcap(str(tmp_path / "adverts.pcap"), packets)
    wire = wire_times(tmp_path / "adverts.pcap", "10.0.0.2", "10.0.0.3", "10.0.0.1")
    assert (len(wire.master_adverts), len(wire.backup_adverts), len(wire.backup_garps)) == (2, 1, 1)
    steps = takeover_steps(wire, cut=100.12, served_again=100.47, hold=1.0)
    assert {k: round(v, 3) for k, v in steps.items()} == {"timer": 0.35, "garp": 0.002, "clients": 0.018}
    assert takeover_steps(wire_times(tmp_path / "none.pcap", "a", "b", "c"), 100.12, None, 1.0) is None
