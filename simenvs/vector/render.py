"""Many tasks' renderers on one GL context.

Each ``SimEnv`` makes its own ``SceneRenderer`` (a GL context, 50-60 ms and tens of MB on
llvmpipe). A batched env with 64 image-observing sims instead gives every task a renderer with
its own ``MjrContext`` (its textures and offscreen buffer) on one shared GL context. Images are
identical to the single env's; the only rule is to bind a context's offscreen buffer before
using it, since creating a context binds its own.
"""

from __future__ import annotations

import mujoco

from simenvs.core import rendering
from simenvs.core.rendering import SceneRenderer

__all__ = ["SharedGL", "SharedContextRenderer"]


class SharedGL:
    """One GL context (created on first use) that many ``SharedContextRenderer`` share."""

    def __init__(self, max_width: int, max_height: int):
        self.max_width, self.max_height = int(max_width), int(max_height)
        self._gl = None

    def get(self):
        if self._gl is None:
            make = getattr(rendering, "_gl_context", None)  # the base's backend choice
            if make is None:  # pragma: no cover - older base
                from mujoco.rendering.classic.gl_context import GLContext as make
            self._gl = make(self.max_width, self.max_height)
        return self._gl

    def close(self) -> None:
        if self._gl is not None:
            if getattr(rendering, "_CURRENT", None) is self._gl:
                rendering._CURRENT = None
            self._gl.make_current()
            self._gl.free()
            self._gl = None


class SharedContextRenderer(SceneRenderer):
    """A ``SceneRenderer`` that owns an ``MjrContext`` but not its GL context.

    Every base method makes the context current through ``_make_current`` first; here that
    also binds this renderer's offscreen buffer.
    """

    def __init__(self, model: mujoco.MjModel, shared: SharedGL, max_geom: int = 2000):
        self.max_width, self.max_height = shared.max_width, shared.max_height
        self.max_geom = max_geom
        self._shared = shared
        self._gl = shared.get()
        self._ctx = None
        self._make_current()
        self.option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self.model = None
        self.set_model(model)

    def _make_current(self) -> None:
        if hasattr(SceneRenderer, "_make_current"):
            super()._make_current()
        else:  # pragma: no cover - older base
            self._gl.make_current()
        if self._ctx is not None:
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)

    def close(self) -> None:
        if self._ctx is not None and self._shared._gl is not None:
            self._make_current()
            self._ctx.free()
        self._ctx = None
        self._gl = None

    def __del__(self):
        pass  # the shared GL context is freed by its owner
