"""The proxy's two pure decisions around a request: may it be retried, and may it go now.

- **Retry** (nginx ``proxy_next_upstream``, HAProxy ``retries`` with
  ``option redispatch``): after an attempt fails, another server is tried
  while attempts remain and the request can be replayed: its body was kept,
  and either it never left (a refused or timed-out connect) or its method is
  idempotent (RFC 9110 9.2.2), because a POST that may have reached the
  server must not run twice.
- **Admission** (HAProxy ``maxconn``): at most ``limit`` requests are in
  flight; the rest wait in arrival order, and one that gave up while waiting
  is skipped, not served.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Generic, TypeVar

from lab.core.http1 import IDEMPOTENT

T = TypeVar("T")


def may_retry(failed_attempts: int, retries: int, replayable: bool, sent: bool, method: str) -> bool:
    """After ``failed_attempts`` failures: try another server?"""
    return failed_attempts <= retries and replayable and (not sent or method in IDEMPOTENT)


class Admission(Generic[T]):
    def __init__(self, limit: int = 0) -> None:
        self.limit = limit  # 0: no limit
        self.in_flight = 0
        self.queue: deque[T] = deque()

    def arrive(self, item: T) -> bool:
        """True: it goes now (and counts as in flight); False: it waits its turn."""
        if self.limit and self.in_flight >= self.limit:
            self.queue.append(item)
            return False
        self.in_flight += 1
        return True

    def leave(self, waiting: Callable[[T], bool] = lambda item: True) -> T | None:
        """One in flight is done: the next queued item that is still ``waiting`` goes now (and is returned)."""
        self.in_flight -= 1
        while self.queue:
            item = self.queue.popleft()
            if waiting(item):
                self.in_flight += 1
                return item
        return None
