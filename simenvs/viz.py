"""Pictures people look at: contact sheets of randomized scenes, videos, image grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["tile", "contact_sheet", "write_video"]


def tile(
    images: Sequence[np.ndarray], cols: int, labels: Sequence[str] | None = None
) -> np.ndarray:
    """Tile equally sized HxWx3 uint8 images into a grid, optionally labelled."""
    if not images:
        raise ValueError("no images to tile")
    h, w = images[0].shape[:2]
    rows = int(np.ceil(len(images) / cols))
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for k, img in enumerate(images):
        img = np.ascontiguousarray(img[..., :3])
        if labels is not None:
            img = img.copy()
            scale = max(0.3, w / 400)
            cv2.putText(img, str(labels[k]), (4, int(14 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, (255, 255, 255), 2, cv2.LINE_AA)  # fmt: skip
            cv2.putText(img, str(labels[k]), (4, int(14 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
        r, c = divmod(k, cols)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return sheet


def contact_sheet(
    env_id: str,
    out: str | Path,
    rows: int = 4,
    cols: int = 4,
    seed: int = 0,
    size: int = 160,
    camera: str | int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Render ``rows*cols`` randomized resets (seeds seed..seed+n-1) of ``env_id`` into one PNG."""
    import gymnasium as gym

    kwargs = {"render_mode": "rgb_array", "width": size, "height": size, **(env_kwargs or {})}
    if camera is not None:
        kwargs["camera"] = camera
    env = gym.make(env_id, **kwargs)
    try:
        images = []
        for k in range(rows * cols):
            env.reset(seed=seed + k)
            images.append(env.render())
    finally:
        env.close()
    sheet = tile(images, cols, [f"seed {seed + k}" for k in range(rows * cols)])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet[..., ::-1])
    return out


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 20.0) -> Path:
    """MP4 through imageio-ffmpeg; falls back to GIF if no encoder is available."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [np.ascontiguousarray(f[..., :3]) for f in frames]
    if path.suffix == ".mp4":
        try:
            with imageio.get_writer(path, fps=fps, codec="libx264", quality=7,
                                    macro_block_size=1) as w:  # fmt: skip
                for f in frames:
                    w.append_data(f)
            return path
        except Exception:  # no ffmpeg: keep the pictures anyway
            path = path.with_suffix(".gif")
    imageio.mimsave(path, frames, duration=1000.0 / fps, loop=0)
    return path
