"""Reports and plots computed from a run's events, and network analysis."""
