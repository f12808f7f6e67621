"""The timeline picture: success rate and latency over time, faults marked."""
from __future__ import annotations

from pathlib import Path

from lab.analysis.metrics import Metrics


def timeline(m: Metrics, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display in a VM's terminal
    import matplotlib.pyplot as plt

    xs = [s.start - m.load_start for s in m.slots]
    rate = [100 * s.ok / s.total if s.total else 100 for s in m.slots]
    p50 = [1000 * s.p50 if s.p50 is not None else float("nan") for s in m.slots]
    p99 = [1000 * s.p99 if s.p99 is not None else float("nan") for s in m.slots]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6.5))
    top.step(xs, rate, where="post", color="tab:green", label="successful requests (%)")
    top.set_ylim(-5, 105)
    top.set_ylabel("success %")
    bottom.plot(xs, p50, color="tab:blue", label="p50")
    bottom.plot(xs, p99, color="tab:orange", label="p99")
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the load started")
    for f in m.faults:
        start = f.at - m.load_start
        end = (f.reverted_at if f.reverted_at is not None else m.load_end) - m.load_start
        for ax in (top, bottom):
            ax.axvspan(start, end, color="tab:red", alpha=0.08)
            ax.axvline(start, color="tab:red", lw=1)
            if f.detected_at is not None:
                ax.axvline(f.detected_at - m.load_start, color="tab:purple", lw=1, ls="--")
        top.annotate(f" {f.action} {f.target}", (start, 5), rotation=90, fontsize=8, va="bottom", ha="left", color="tab:red")
    for o in m.outages:
        top.axvspan(o.start - m.load_start, max(o.end - m.load_start, o.start - m.load_start + 0.05), color="black", alpha=0.15)
    top.set_title(f"{m.scenario}: red = fault in force, dashed = detected (health DOWN), grey = outage window")
    top.legend(loc="lower left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
