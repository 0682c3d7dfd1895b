"""Learning-curve plots and policy videos for run folders (headless: Agg, imageio)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_learning_curve", "write_video"]


def _rolling(x: np.ndarray, window: int) -> np.ndarray:
    if len(x) == 0:
        return x
    window = max(1, min(window, len(x)))
    c = np.cumsum(np.insert(np.asarray(x, dtype=float), 0, 0.0))
    out = np.empty(len(x))
    for i in range(len(x)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def plot_learning_curve(metrics: dict[str, Any], path: str | Path) -> Path:
    """Training returns (rolling mean) and evaluation return / success rate vs env steps."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    train = metrics.get("train_episodes") or {}
    evals = metrics.get("evaluations") or []
    t = np.asarray(train.get("t", []), dtype=float)
    r = np.asarray(train.get("r", []), dtype=float)
    s = [v for v in train.get("s", []) if v is not None]
    has_success = bool(s) or any(e.get("success_rate") is not None for e in evals)

    fig, axes = plt.subplots(1, 2 if has_success else 1, figsize=(11 if has_success else 6, 4))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    window = max(1, len(r) // 50)
    if len(r):
        ax.plot(t, r, ".", ms=2, alpha=0.25, color="tab:blue", label="train episode")
        ax.plot(t, _rolling(r, window), color="tab:blue", label=f"train (mean of {window})")
    if evals:
        et = [e["t"] for e in evals]
        ax.errorbar(
            et,
            [e["mean_return"] for e in evals],
            yerr=[e.get("std_return", 0.0) for e in evals],
            color="tab:orange",
            marker="o",
            ms=3,
            capsize=2,
            label="eval (deterministic)",
        )
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)

    if has_success:
        ax = axes[1]
        st = [ti for ti, si in zip(train.get("t", []), train.get("s", [])) if si is not None]
        if s:
            ax.plot(st, _rolling(np.asarray(s, float), window), color="tab:blue", label="train")
        ev = [e for e in evals if e.get("success_rate") is not None]
        if ev:
            et = np.array([e["t"] for e in ev], float)
            sr = np.array([e["success_rate"] for e in ev], float)
            lo = np.array([e["success_ci95"][0] for e in ev], float)
            hi = np.array([e["success_ci95"][1] for e in ev], float)
            ax.plot(et, sr, "o-", color="tab:orange", ms=3, label="eval")
            ax.fill_between(et, lo, hi, color="tab:orange", alpha=0.2, label="eval 95% CI")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("env steps")
        ax.set_ylabel("success rate")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    title = f"{metrics.get('env_id', '')}  {metrics.get('algo', '')}".strip()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 30.0) -> Path | None:
    """Write ``frames`` as mp4 (imageio-ffmpeg); fall back to gif. Returns the written path."""
    import imageio.v2 as imageio

    if not frames:
        return None
    path = Path(path)
    # even height/width: yuv420p (the pixel format every player decodes) requires it
    frames = [np.asarray(f, dtype=np.uint8) for f in frames]
    h, w = frames[0].shape[:2]
    frames = [f[: h - h % 2, : w - w % 2] for f in frames]
    fps = float(min(max(fps, 1.0), 60.0))
    try:
        mp4 = path.with_suffix(".mp4")
        # macro_block_size=1 keeps odd frame sizes; yuv420p plays everywhere
        with imageio.get_writer(
            mp4, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p"
        ) as w:
            for f in frames:
                w.append_data(f)
        return mp4
    except Exception as e:  # no ffmpeg binary or codec: a gif still shows the policy
        warnings.warn(f"mp4 writing failed ({e}); writing a gif instead", stacklevel=2)
        gif = path.with_suffix(".gif")
        imageio.mimsave(gif, frames, duration=1.0 / fps, loop=0)
        return gif
