"""simenvs: Gymnasium robotics environments for sim-to-real research.

``import simenvs`` registers every env id with Gymnasium. The import is light and guarded:
on a robot computer with only numpy and onnxruntime, ``import simenvs.deploy`` works because
nothing here needs the simulation stack.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

# Headless rendering by default; a user's own choice wins.
os.environ.setdefault("MUJOCO_GL", "egl")

try:  # registration needs gymnasium only (entry points are strings, nothing is imported)
    import gymnasium as _gym  # noqa: F401
except ImportError:  # deployment installs: no simulation stack
    pass
else:
    from simenvs._registration import register_all

    register_all()

__all__ = ["__version__"]
