"""A solution to the starter in ../starter/least_loaded_of_two.py (the power of two choices).

halab's own version, with weights, is ``p2c`` in lab/core/algorithms/random_choice.py.
"""
from lab.core.algorithms import Algorithm


class PowerOfTwo(Algorithm):
    name = "my_p2c"

    def choose(self, candidates, request, rng):
        if len(candidates) == 1:
            return candidates[0]
        first, second = rng.sample(list(candidates), 2)
        return second if second.active < first.active else first
