"""A solution of exercise 3's backup timer (RFC 5798 6.4.2; compare RfcTimer in lab/core/vrrp.py)."""
from lab.core.vrrp import BackupTimer


class MyTimer(BackupTimer):
    name = "my_timer"

    def after_advert(self, now, heard, mine, preempt, interval):
        skew = (256 - mine) * interval / 256
        master_down = 3 * interval + skew
        if heard == 0:
            return now + skew
        if heard >= mine or not preempt:
            return now + master_down
        return None
