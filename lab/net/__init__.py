"""Mininet glue: the lab's lifecycle, service placement, faults, feature detection."""
