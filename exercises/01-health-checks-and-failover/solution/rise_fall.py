"""A solution of exercise 1's health counter (HAProxy's rule; compare lab/core/health.py)."""
from lab.core.health import DOWN, FAIL, PASS, UP, HealthRule


class RiseFall(HealthRule):
    name = "my_rise_fall"

    def step(self, state, health, result, settings):
        if state == UP and result == PASS:
            return UP, settings.top
        if state == DOWN and result == FAIL:
            return DOWN, 0
        if state == UP:  # and FAIL
            if health - 1 < settings.rise:
                return DOWN, 0
            return UP, health - 1
        # DOWN and PASS
        if health + 1 >= settings.rise:
            return UP, settings.top
        return DOWN, health + 1
