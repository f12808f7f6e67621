"""The one error the Mininet side raises: the lab cannot do what was asked (the message says why and what to do)."""


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why and what to do."""
