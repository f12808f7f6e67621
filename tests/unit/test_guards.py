"""The VRRP source filter's pure parts: whose adverts a gateway takes in, and reading its counter."""
from types import SimpleNamespace

from lab.net.guards import packets_dropped, vrrp_peers

LISTING = """table inet halab_vrrp_guard {
\tchain input {
\t\ttype filter hook input priority -5; policy accept;
\t\tip protocol vrrp ip saddr != { 10.0.0.2, 10.0.0.3 } counter packets 33 bytes 1320 drop
\t}
}
"""


def test_the_counter_of_the_rule_is_read_and_a_missing_one_is_zero():
    assert packets_dropped(LISTING) == 33
    assert packets_dropped("Error: No such file or directory") == 0


def test_a_gateway_accepts_the_gateways_of_its_own_groups_only():
    layout = SimpleNamespace(
        addresses={"gw1": "10.0.0.2", "gw2": "10.0.0.3", "gw3": "10.0.0.4", "c1": "10.0.0.101"},
        vrrp={"gw1": [{"vrid": 51}, {"vrid": 52}], "gw2": [{"vrid": 51}], "gw3": [{"vrid": 53}], "c1": []})
    assert vrrp_peers(layout, "gw1") == ["10.0.0.2", "10.0.0.3"]
    assert vrrp_peers(layout, "gw3") == ["10.0.0.4"]
