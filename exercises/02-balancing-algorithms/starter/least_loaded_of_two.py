"""Your own balancing algorithm: the power of two choices.

Draw two different servers at random and send the request to the one with
fewer requests in flight (``server.active``). One comparison, and the slow
server stops collecting a third of the traffic (step 5 of the README).

Fill in ``choose`` below, then:

    halab grade 02-balancing-algorithms                 # checks your file, then runs it on the network
    sudo halab run exercises/02-balancing-algorithms/my-algorithm.toml

What you get in ``choose``:
- ``candidates``: the servers that may take this request (UP, not drained),
  never empty. Each has ``.name``, ``.active`` (requests in flight now),
  ``.weight``.
- ``request``: who asks and what (``.client``, ``.path``); not needed here.
- ``rng``: a ``random.Random`` to draw with (use it, not the ``random``
  module: then every run can be replayed).
Return one of the candidates.
"""
from lab.core.algorithms import Algorithm


class PowerOfTwo(Algorithm):
    name = "my_p2c"

    def choose(self, candidates, request, rng):
        if len(candidates) == 1:
            return candidates[0]
        # TODO 1: draw two *different* candidates at random (hint: rng.sample(candidates, 2))
        # TODO 2: return the one with fewer requests in flight (.active); on a tie, either
        raise NotImplementedError("draw two candidates and return the less busy one")
