"""Per-iteration SimOpt figure: each parameter's mean +- std (with the hidden truth when known),
the discrepancy of the current mean, and the policy's success in reality."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_history"]


def plot_history(
    history: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    path: str | os.PathLike,
    truth: Mapping[str, float] | None = None,
    title: str = "SimOpt",
) -> Path:
    """Write the figure for ``history`` (one ``SimOpt`` entry per iteration, with ``before``
    and ``after`` distributions, discrepancies and the real success rate)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(names)
    cols = min(3, n + 2)
    rows = int(np.ceil((n + 2) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    axes = axes.reshape(-1)
    # Point 0 is the prior; point k the distribution after k iterations.
    it = np.arange(len(history) + 1, dtype=float)
    states = [history[0]["before"]] + [h["after"] for h in history] if history else []
    for i, name in enumerate(names):
        ax = axes[i]
        m = np.array([st["mean"][name] for st in states])
        s = np.array([st["std"][name] for st in states])
        ax.plot(it, m, "o-", color="C0", label="mean")
        ax.fill_between(it, m - s, m + s, color="C0", alpha=0.25, label="+-1 std")
        if truth and name in truth:
            ax.axhline(truth[name], color="C3", ls="--", label="hidden truth")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("iteration")
        if i == 0:
            ax.legend(fontsize=7)
    ax = axes[n]
    d = [history[0]["discrepancy_before"]] + [h["discrepancy_after"] for h in history]
    ok = [(x, y) for x, y in zip(it, d) if y is not None and np.isfinite(y)]
    if ok:
        x, y = zip(*ok)
        ax.plot(x, y, "o-", color="C1")
        if min(y) > 0:
            ax.set_yscale("log")
    ax.set_title("discrepancy of the mean vs that iteration's real data", fontsize=9)
    ax.set_xlabel("iteration")
    ax = axes[n + 1]
    succ = [(float(h["iteration"]), h.get("real_success")) for h in history]
    succ = [(x, y) for x, y in succ if y is not None]
    if succ:
        x, y = zip(*succ)
        ax.plot(x, 100 * np.asarray(y), "o-", color="C2")
    ax.set_ylim(-5, 105)
    ax.set_title("success in reality (%)", fontsize=9)
    ax.set_xlabel("iteration")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[: n + 2]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[n + 2 :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.88, wspace=0.3, hspace=0.6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path
