"""Your own VRRP backup timer: when does a BACKUP take the VIP?

A BACKUP listens to the MASTER's adverts. Each advert it hears restarts a
timer; if the timer runs out, the MASTER is presumed dead and this BACKUP
becomes MASTER (RFC 5798, section 6.4.2, and the top of the README):

    Master_Down_Interval = 3 x interval + Skew_Time
    Skew_Time            = (256 - priority) x interval / 256

- an advert with priority 0 says "I am stopping": take over after only
  Skew_Time;
- an advert from a master we accept (its priority is at least ours, or we
  do not preempt) restarts the timer: Master_Down_Interval from now;
- an advert from a lower-priority master while we preempt does not count:
  keep the timer running, and when it fires we take over.

Skew_Time is what makes the highest-priority backup go first when several
wait: it is shorter the higher the priority.

Fill in ``after_advert`` below, then:

    halab grade 03-vrrp-redundancy        # checks your timer, then runs it on the network (sudo)
    sudo halab run exercises/03-vrrp-redundancy/my-timer.toml

What you get in ``after_advert``:
- ``now``: the time the advert arrived, in seconds;
- ``heard``: the priority in the advert (0: the master is stopping);
- ``mine``: this BACKUP's own priority (1-254);
- ``preempt``: whether this BACKUP takes over from a lower-priority master;
- ``interval``: the master's advert interval, in seconds.
Return the time at which this BACKUP becomes MASTER unless another advert
comes first, or ``None`` to keep the timer as it is.
"""
from lab.core.vrrp import BackupTimer


class MyTimer(BackupTimer):
    name = "my_timer"

    def after_advert(self, now, heard, mine, preempt, interval):
        # TODO 1: Skew_Time for priority `mine`, then Master_Down_Interval
        # TODO 2: priority 0: now + Skew_Time
        # TODO 3: a master we accept (heard >= mine, or not preempt): now + Master_Down_Interval
        # TODO 4: otherwise (a lower-priority master, and we preempt): None
        raise NotImplementedError("the four TODOs")
