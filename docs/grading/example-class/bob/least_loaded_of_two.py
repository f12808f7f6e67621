"""A hand-in with a subtle bug: its two draws may be the same server.

``rng.choice`` twice is not ``rng.sample(candidates, 2)``: with two
candidates left, half the time both draws are the same one, and the slow
origin is "compared" with itself and gets the request.
"""
from lab.core.algorithms import Algorithm


class PowerOfTwo(Algorithm):
    name = "bob_p2c"

    def choose(self, candidates, request, rng):
        a, b = rng.choice(candidates), rng.choice(candidates)
        return a if a.active <= b.active else b
