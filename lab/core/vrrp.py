"""VRRPv3 (RFC 5798): which router of a group owns the virtual IP, as a state table.

Routers of one group (one ``vrid``) share a virtual IP address (VIP) that
clients use as their gateway or service address. The MASTER owns it and
multicasts an ADVERTISEMENT every ``Advertisement_Interval``; BACKUPs listen.
If a BACKUP hears nothing for

    Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time
    Skew_Time            = (256 - Priority) x Master_Adver_Interval / 256

it takes over: it adds the VIP and sends a gratuitous ARP so the switch and
the clients learn the VIP's new MAC. Skew_Time makes the highest-priority
backup go first. A master that stops gracefully sends priority 0, so backups
take over after only Skew_Time. Priority 255 is the address owner.
A backup with ``preempt`` takes over from a lower-priority master at once;
with ``nopreempt`` it waits until the master fails.

The machine is sans-IO: events go in (``start``, ``advert``, ``tick``,
``shutdown``, ``set_priority``) with the time, and a list of ``Action``s
comes out (send an advert, take the VIP, send GARP, drop the VIP). The
driver (``lab.services.vrrp``) does the sockets. Times are seconds here;
on the wire they are centiseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

from lab.core.errors import IllegalTransition

INIT, BACKUP, MASTER = "INIT", "BACKUP", "MASTER"

# Actions the driver must carry out, in order.
SEND_ADVERT = "send_advert"  # with the current priority (0 when stopping)
TAKE_VIP = "take_vip"  # add the VIP to the interface
SEND_GARP = "send_garp"  # gratuitous ARP for the VIP
DROP_VIP = "drop_vip"


@dataclass(frozen=True)
class VrrpSettings:
    vrid: int = 51
    priority: int = 100  # keepalived default
    advert_interval: float = 1.0  # seconds; RFC 5798 default 100 cs
    preempt: bool = True  # RFC 5798 default
    address: str = ""  # this router's primary IPv4 address (breaks priority ties)
    # keepalived preempt_delay (default 0): seconds added to the wait before taking over at
    # startup or from a lower-priority master, so a returning router settles before it preempts
    preempt_delay: float = 0.0
    # keepalived garp_master_refresh (default 0: off): a MASTER repeats its gratuitous ARP this
    # often, so a client whose ARP entry went wrong (a forged GARP, a lost one) is put right
    garp_refresh: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid must be 1..255 (got {self.vrid})")
        if not 1 <= self.priority <= 255:
            raise ValueError(f"priority must be 1..255 (got {self.priority}); 0 is reserved for 'master stopping'")
        if not 0 <= self.preempt_delay <= 1000:
            raise ValueError(f"preempt_delay must be 0..1000 s (keepalived's range), got {self.preempt_delay}")
        if not 0.01 <= self.advert_interval <= 40.95:
            raise ValueError(f"advert_interval must be 0.01..40.95 s (12 bits of centiseconds), got {self.advert_interval}")
        if self.garp_refresh < 0:
            raise ValueError(f"garp_refresh must be 0 (off) or more seconds, got {self.garp_refresh}")


LOWER_PRIO_GARP_GAP = 1.0  # seconds between two GARP bursts answering a lower-priority master
GARP_REFRESH = "garp_master_refresh"  # the reason of a MASTER's periodic GARP (keepalived's name for it)


def skew_time(priority: int, interval: float) -> float:
    return (256 - priority) * interval / 256


def master_down_interval(priority: int, interval: float) -> float:
    return 3 * interval + skew_time(priority, interval)


class BackupTimer:
    """When a BACKUP that just heard an advert will take over: the seam exercise 3's students fill.

    ``after_advert`` gets the time, the priority in the advert (``heard``, 0:
    the master is stopping), the BACKUP's own (``mine``), its ``preempt``
    setting and the advert's interval, and returns the time at which this
    BACKUP becomes MASTER unless another advert comes first, or ``None`` to
    keep the timer as it is (the advert does not count).
    """

    name = "timer"

    def after_advert(self, now: float, heard: int, mine: int, preempt: bool, interval: float) -> float | None:
        raise NotImplementedError


class RfcTimer(BackupTimer):
    """RFC 5798 6.4.2: the reference a student's timer is graded against."""

    name = "rfc5798"

    def after_advert(self, now: float, heard: int, mine: int, preempt: bool, interval: float) -> float | None:
        if heard == 0:  # the master is stopping: take over after only Skew_Time
            return now + skew_time(mine, interval)
        if not preempt or heard >= mine:  # a master we accept: silence for Master_Down_Interval means it is gone
            return now + master_down_interval(mine, interval)
        return None  # a lower-priority master and we preempt: ignore it, our timer will fire


@dataclass(frozen=True)
class Action:
    kind: str
    priority: int = 0
    reason: str = ""


@dataclass(frozen=True)
class StateChange:
    before: str
    after: str
    at: float
    reason: str


def _ip_key(address: str) -> tuple[int, ...]:
    return tuple(int(x) for x in address.split(".")) if address else (0,)


@dataclass
class Vrrp:
    settings: VrrpSettings
    state: str = INIT
    priority: int = field(init=False)
    master_adver_interval: float = field(init=False)
    advert_at: float | None = None  # next advertisement due (MASTER)
    garp_at: float | None = None  # next periodic gratuitous ARP due (MASTER with garp_refresh)
    master_down_at: float | None = None  # takeover due (BACKUP)
    master: str = ""  # who we believe is master (its address)
    last_advert: float | None = None
    lower_master_since: float | None = None  # when we first heard a lower-priority master (preempt_delay counts from it)
    last_lower_garp: float | None = None  # when we last answered a lower-priority master with adverts and GARP
    changes: list[StateChange] = field(default_factory=list)
    timer: BackupTimer = field(default_factory=RfcTimer)

    def __post_init__(self) -> None:
        self.priority = self.settings.priority
        self.master_adver_interval = self.settings.advert_interval

    # ---- derived times ---------------------------------------------------------------
    @property
    def skew(self) -> float:
        return skew_time(self.priority, self.master_adver_interval)

    @property
    def down_interval(self) -> float:
        return master_down_interval(self.priority, self.master_adver_interval)

    def next_deadline(self) -> float | None:
        times = [t for t in (self.advert_at, self.master_down_at, self.garp_at) if t is not None]
        return min(times) if times else None

    # ---- transitions -----------------------------------------------------------------
    def _become(self, state: str, now: float, reason: str) -> None:
        self.changes.append(StateChange(self.state, state, now, reason))
        self.state = state
        self.lower_master_since = None

    def _to_master(self, now: float, reason: str) -> list[Action]:
        self._become(MASTER, now, reason)
        self.master = self.settings.address
        self.master_down_at = None
        self.advert_at = now + self.settings.advert_interval
        self.garp_at = now + self.settings.garp_refresh if self.settings.garp_refresh else None
        # RFC 5798 6.4.2 lists "send an ADVERTISEMENT" before the gratuitous ARP. halab takes the VIP and
        # announces it to the clients first, then tells the other routers: the GARP is what ends the clients'
        # outage, and the advert's send (0.1-0.2 ms on an idle small VM, measured) would only delay it. The
        # other backups' timers are a whole Skew_Time apart, so an advert 0.1 ms later changes nothing for them.
        return [Action(TAKE_VIP, reason=reason), Action(SEND_GARP, reason=reason), Action(SEND_ADVERT, self.priority)]

    def _to_backup(self, now: float, reason: str) -> list[Action]:
        was_master = self.state == MASTER
        self._become(BACKUP, now, reason)
        self.advert_at = self.garp_at = None
        self.master_down_at = now + self.down_interval
        return [Action(DROP_VIP, reason=reason)] if was_master else []

    def _start(self, now: float) -> list[Action]:
        """BACKUP, MASTER after Master_Down_Interval (+ preempt_delay) of silence; the owner (255): MASTER now"""
        # RFC 5798 6.4.1: the address owner (255) becomes master at once, others start as backup.
        if self.priority == 255:
            return self._to_master(now, "address owner (priority 255)")
        actions = self._to_backup(now, "startup")
        if self.master_down_at is not None:
            self.master_down_at += self.settings.preempt_delay
        return actions

    def _advert_backup(self, now: float, priority: int, source: str, interval: float) -> list[Action]:
        """restart the down timer; priority 0: wait only Skew_Time; a lower one with preempt: ignore it"""
        self.last_advert = now
        if priority and (not self.settings.preempt or priority >= self.priority):  # a master we accept
            self.master = source
            self.master_adver_interval = interval
            self.lower_master_since = None
        deadline = self.timer.after_advert(now, priority, self.priority, self.settings.preempt, self.master_adver_interval)
        if deadline is not None:
            self.master_down_at = deadline
            return []
        # A lower-priority master with preempt on: ignore it, our timer will fire; with a
        # preempt_delay, not before that long after we first heard this master.
        if self.lower_master_since is None:
            self.lower_master_since = now
            if self.settings.preempt_delay and self.master_down_at is not None:
                self.master_down_at = max(self.master_down_at, now + self.down_interval + self.settings.preempt_delay)
        return []

    def _advert_master(self, now: float, priority: int, source: str, interval: float) -> list[Action]:
        """a higher one (or equal, higher IP): advertise once, drop the VIP, BACKUP; a lower one: advert + GARP"""
        self.last_advert = now
        if priority == 0:  # another master stopping: assert ourselves at once
            self.advert_at = now + self.settings.advert_interval
            return [Action(SEND_ADVERT, self.priority)]
        if priority > self.priority or (priority == self.priority and _ip_key(source) > _ip_key(self.settings.address)):
            self.master = source
            self.master_adver_interval = interval
            # One last advert of ours before yielding (keepalived vrrp_higher_prio_send_advert):
            # after a split brain the clients may be sending to us, and the winner answers a
            # lower-priority MASTER with gratuitous ARP (below), which moves them back.
            mine = Action(SEND_ADVERT, self.priority, "yielding: tell the winner we were MASTER too")
            return [mine] + self._to_backup(now, f"advert from {source} with priority {priority} > ours {self.priority}")
        # We win, and another router believes it is MASTER too: a split brain (or a partition)
        # just healed. Advertise now, so it yields at once, and send gratuitous ARP, because
        # the clients' caches may still point at the other one (keepalived does both by
        # default: vrrp_lower_prio_no_advert off, vrrp_garp_lower_prio_repeat). At most once
        # per second, in case the other side keeps advertising.
        if self.last_lower_garp is not None and now - self.last_lower_garp < LOWER_PRIO_GARP_GAP:
            return []
        self.last_lower_garp = now
        self.advert_at = now + self.settings.advert_interval
        return [Action(SEND_ADVERT, self.priority), Action(SEND_GARP, reason=f"a lower-priority MASTER ({source}) was heard")]

    def _tick_master(self, now: float) -> list[Action]:
        """advertise every advert_interval (and GARP every garp_refresh)"""
        actions = []
        if self.garp_at is not None and now >= self.garp_at:
            self.garp_at = now + self.settings.garp_refresh
            actions.append(Action(SEND_GARP, reason=GARP_REFRESH))
        if self.advert_at is not None and now >= self.advert_at:
            # On the grid, not from now: a timer that wakes a little late (a loop with
            # millisecond timers) must not push every later advert back too. Counting from
            # now, 1 ms late per wake at 0.03 s adverts is adverts 3 % apart too far, which
            # eats the backups' Master_Down_Interval margin under loss. Far behind (the
            # process was frozen): start a new grid from now rather than send a burst.
            following = self.advert_at + self.settings.advert_interval
            self.advert_at = following if following > now else now + self.settings.advert_interval
            actions.append(Action(SEND_ADVERT, self.priority))
        return actions

    def _tick_backup(self, now: float) -> list[Action]:
        """down timer run out: MASTER, take the VIP, gratuitous ARP"""
        if self.master_down_at is not None and now >= self.master_down_at:
            heard = "no advert since startup" if self.last_advert is None else f"no advert for {now - self.last_advert:.3f} s"
            if self.last_advert is not None and self.master_adver_interval and now - self.last_advert < self.down_interval:
                heard = "only adverts of lower priority (preempt)"
            return self._to_master(now, f"{heard} (Master_Down_Interval {self.down_interval:.3f} s)")
        return []

    def _shutdown_master(self, now: float) -> list[Action]:
        """advertise priority 0, drop the VIP, INIT"""
        self._become(INIT, now, "shutdown")
        self.advert_at = self.garp_at = None
        return [Action(SEND_ADVERT, 0, "stopping: priority 0 lets a backup take over after Skew_Time"), Action(DROP_VIP, reason="shutdown")]

    def _shutdown_backup(self, now: float) -> list[Action]:
        """INIT"""
        self._become(INIT, now, "shutdown")
        self.master_down_at = None
        return []

    TABLE: ClassVar[dict[tuple[str, str], Callable[..., list[Action]]]] = {
        (INIT, "start"): _start,
        (BACKUP, "advert"): _advert_backup,
        (MASTER, "advert"): _advert_master,
        (BACKUP, "tick"): _tick_backup,
        (MASTER, "tick"): _tick_master,
        (INIT, "tick"): lambda self, now: [],
        (INIT, "advert"): lambda self, now, *a: [],
        (MASTER, "shutdown"): _shutdown_master,
        (BACKUP, "shutdown"): _shutdown_backup,
    }

    def _dispatch(self, event: str, now: float, *args: object) -> list[Action]:
        step = self.TABLE.get((self.state, event))
        if step is None:
            raise IllegalTransition(f"VRRP vrid {self.settings.vrid}: no transition from {self.state} on {event!r}")
        return step(self, now, *args)

    def start(self, now: float) -> list[Action]:
        return self._dispatch("start", now)

    def advert(self, now: float, priority: int, source: str, interval: float) -> list[Action]:
        return self._dispatch("advert", now, priority, source, interval)

    def tick(self, now: float) -> list[Action]:
        return self._dispatch("tick", now)

    def shutdown(self, now: float) -> list[Action]:
        return self._dispatch("shutdown", now)

    def set_priority(self, priority: int, now: float) -> list[Action]:
        """Tracking changed our priority (keepalived track_script weight)."""
        if not 1 <= priority <= 254:
            raise ValueError(f"a tracked priority must stay in 1..254 (got {priority})")
        self.priority = priority
        if self.state == MASTER:  # tell the backups now, so a better one can preempt
            self.advert_at = now + self.settings.advert_interval
            return [Action(SEND_ADVERT, priority)]
        return []


def diagram() -> str:
    """The state table as text, each row from its handler's docstring: the docs show it and cannot drift from it."""
    return "\n".join(f"{state:<6} on {event:<8} -> {(fn.__doc__ or 'ignored').strip()}" for (state, event), fn in Vrrp.TABLE.items())
