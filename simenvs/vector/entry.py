"""Gymnasium ``vector_entry_point`` creators for the simenvs ids.

``gym.make_vec(id, num_envs=64, vectorization_mode="vector_entry_point", **kwargs)`` calls the
registered creator with ``num_envs`` and the env kwargs only (not the id), so each id gets its
own creator name here: ``simenvs/DroneRace-v0`` -> ``"simenvs.vector.entry:DroneRace_v0"``
(``vector_entry_point_for(env_id)`` builds that string). A creator accepts
``BatchedVectorEnv``'s options (``nthread``, ``autoreset_mode``, ``fast_path``...) next to the
env's own kwargs.
"""

from __future__ import annotations

import re
from typing import Any

from simenvs.vector.batched import BatchedVectorEnv

__all__ = ["make_batched", "vector_entry_point_for"]

_ID = re.compile(r"^simenvs/([A-Za-z][A-Za-z0-9]*)-v(\d+)$")
_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9]*)_v(\d+)$")


def make_batched(env_id: str, num_envs: int = 1, **kwargs: Any) -> BatchedVectorEnv:
    """The natively batched vector env of ``env_id`` (a registered simenvs id)."""
    return BatchedVectorEnv(env_id, num_envs, **kwargs)


def vector_entry_point_for(env_id: str) -> str:
    """``"simenvs/DroneRace-v0"`` -> ``"simenvs.vector.entry:DroneRace_v0"``."""
    m = _ID.match(env_id)
    if m is None:
        raise ValueError(f"{env_id!r} is not a simenvs id of the form 'simenvs/<Name>-v<k>'")
    return f"{__name__}:{m.group(1)}_v{m.group(2)}"


class _Creator:
    """The vector entry point of one id: ``creator(num_envs=..., **kwargs)``."""

    def __init__(self, env_id: str):
        self.env_id = env_id
        self.__name__ = env_id

    def __call__(self, num_envs: int = 1, **kwargs: Any) -> BatchedVectorEnv:
        return make_batched(self.env_id, num_envs, **kwargs)

    def __repr__(self) -> str:
        return f"<batched vector entry point of {self.env_id}>"


def __getattr__(name: str) -> _Creator:
    m = _NAME.match(name)
    if m is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _Creator(f"simenvs/{m.group(1)}-v{m.group(2)}")
