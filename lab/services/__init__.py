"""Programs that run inside Mininet hosts as real processes (``python -m lab.services.X``).

Each takes ``--config FILE`` (JSON written by the lab), appends events to
the run's event log, answers runtime commands on a Unix socket, and emits
``service_ready`` once it accepts traffic.
"""
