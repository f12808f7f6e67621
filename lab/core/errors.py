"""Errors the pure state machines share (health counters, VRRP election, bonding)."""


class IllegalTransition(Exception):
    """An event arrived that a state table has no entry for: a bug in the caller, never a network condition."""
