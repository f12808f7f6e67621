"""Your own health counter: the rule that turns probe results into UP and DOWN.

A balancer probes each origin every ``inter`` seconds. One lost probe must
not take a server out (the network drops a packet now and then), and a dead
server must not stay in for long. HAProxy keeps one counter per server,
from 0 to ``top = rise + fall - 1``, and the server is UP while the counter
is at least ``rise``:

- a passed probe adds 1; reaching ``rise`` marks the server UP and jumps the
  counter to the top;
- a failed probe takes 1; dropping below ``rise`` marks the server DOWN and
  resets the counter to 0.

So an UP server needs ``fall`` failures in a row to go DOWN, and a DOWN one
``rise`` passes in a row to come back (step 3 of the README).

Fill in ``step`` below, then:

    halab grade 01-health-checks-and-failover        # checks your rule, then runs it on the network (sudo)
    sudo halab run exercises/01-health-checks-and-failover/my-counter.toml

What you get in ``step``:
- ``state``: ``UP`` or ``DOWN``, what the balancer believes now;
- ``health``: the counter, from 0 to ``settings.top``;
- ``result``: ``PASS`` or ``FAIL``, the probe that just finished;
- ``settings``: ``.rise``, ``.fall`` and ``.top`` (= rise + fall - 1).
Return the new ``(state, health)``. Keep nothing in ``self``: the counter
is the state.
"""
from lab.core.health import DOWN, FAIL, PASS, UP, HealthRule


class RiseFall(HealthRule):
    name = "my_rise_fall"

    def step(self, state, health, result, settings):
        if state == UP and result == PASS:
            return UP, settings.top  # a pass heals an UP server completely
        if state == DOWN and result == FAIL:
            return DOWN, 0  # a failure resets a recovering server
        # TODO 1: UP and FAIL: one step down; below rise it is DOWN with the counter at 0
        # TODO 2: DOWN and PASS: one step up; at rise it is UP with the counter at the top
        raise NotImplementedError("the two TODOs: UP on FAIL, and DOWN on PASS")
