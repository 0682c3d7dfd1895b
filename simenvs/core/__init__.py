"""The shared MuJoCo env base, scene helpers and rendering.

Imported lazily so ``simenvs.core.scene`` can be used by the randomization modules without
pulling in the env (and so no import cycle forms).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SimEnv", "ParamDef", "scene", "OBS_MODES"]


def __getattr__(name: str) -> Any:
    if name in ("SimEnv", "OBS_MODES", "PRESETS"):
        return getattr(importlib.import_module("simenvs.core.env"), name)
    if name == "ParamDef":
        from simenvs.randomization.params import ParamDef

        return ParamDef
    if name == "scene":
        return importlib.import_module("simenvs.core.scene")
    raise AttributeError(f"module 'simenvs.core' has no attribute {name!r}")
