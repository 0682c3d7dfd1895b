"""Stand-in reality: a simenvs env with hidden true dynamics and unmodeled effects.

``EnvReality`` runs a policy in such an env and returns ``Rollouts`` like a robot would: the
recorded episodes carry only ``layout.*`` params (what a lab would measure about the scene),
never the hidden dynamics, which stay in ``truth`` for evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from simenvs.data import RolloutRecorder, Rollouts
from simenvs.simopt.env_params import (
    expand_params,
    identifiable_dynamics,
    param_refs,
    prior_range,
)
from simenvs.simopt.rollout import EnvFactory, PolicyFactory, make_env

from .effects import EFFECTS

__all__ = ["EnvReality", "edge_truth"]


def edge_truth(
    env: gym.Env,
    names: Sequence[str] | None = None,
    *,
    margin: float = 0.15,
    seed: int = 0,
) -> dict[str, float]:
    """Hidden values just outside the env's training prior: for each parameter, the low or
    high end (chosen by ``seed``) of its randomization range pushed out by ``margin`` x the
    range, kept inside the physical bounds (the other side when there is no room). Names may
    be vector elements (``dynamics.quad.drag[0]``). Unrandomized params move by ``margin`` x
    nominal."""
    names = list(names) if names is not None else identifiable_dynamics(env)
    rng = np.random.default_rng(seed)
    out = {}
    for p in param_refs(env, names):
        lo, hi = prior_range(env, p.name)
        blo, bhi = p.bounds
        width = hi - lo if hi > lo else abs(p.nominal) or (bhi - blo) * 0.1
        up = bool(rng.integers(2))
        v = (hi + margin * width) if up else (lo - margin * width)
        if not blo <= v <= bhi:  # no room on that side: take the other
            v = (lo - margin * width) if up else (hi + margin * width)
        out[p.name] = float(np.clip(v, blo, bhi))
    return out


class EnvReality:
    """A ``RealSystem`` backed by an env: hidden ``truth`` fixed every episode, ``effects``
    (names from ``EFFECTS`` with optional kwargs) wrapped around it, episodes recorded."""

    def __init__(
        self,
        env: str | EnvFactory,
        *,
        truth: Mapping[str, Any] | None = None,
        effects: Sequence[str] | Mapping[str, Mapping[str, Any]] = (),
        env_kwargs: Mapping[str, Any] | None = None,
        name: str = "proxy",
        record_sim_state: bool = True,
    ):
        self.env_spec = env
        self.env_kwargs = dict(env_kwargs or {})
        if not isinstance(effects, Mapping):
            effects = {e: {} for e in effects}
        unknown = sorted(set(effects) - set(EFFECTS))
        if unknown:
            raise ValueError(f"unknown reality effects {unknown}; allowed: {sorted(EFFECTS)}")
        self.effects = {k: {**EFFECTS[k][1], **dict(v)} for k, v in effects.items()}
        self.truth = None if truth is None else {k: v for k, v in truth.items()}
        self.name = name
        self.record_sim_state = record_sim_state
        self._env: gym.Env | None = None

    @property
    def env(self) -> gym.Env:
        """The reality env with its effects (built on first use)."""
        if self._env is None:
            env = make_env(self.env_spec, self.env_kwargs)
            for effect, kwargs in self.effects.items():
                env = EFFECTS[effect][0](env, **kwargs)
            self._env = env
        return self._env

    def collect(
        self, policy: PolicyFactory | None, n_episodes: int, *, iteration: int = 0, seed: int = 0
    ) -> Rollouts:
        """Run ``n_episodes`` of the policy (seeds ``seed .. seed+n-1``) and return them."""
        if policy is None:
            raise ValueError(f"{self.name} runs a policy: pass a policy factory")
        rec = RolloutRecorder(
            self.env,
            None,
            source=self.name,
            params_prefixes=("layout.",),
            record_sim_state=self.record_sim_state,
            extra={"reality": self.name, "effects": self.effects, "iteration": iteration},
        )
        pol = policy(rec)
        fixed = {"params": expand_params(self.truth, env=self.env)} if self.truth else None
        for i in range(n_episodes):
            obs, _ = rec.reset(seed=int(seed) + i, options=fixed)
            if hasattr(pol, "reset"):
                pol.reset()
            done = False
            while not done:
                obs, _, term, trunc, _ = rec.step(pol.act(obs))
                done = term or trunc
        return rec.rollouts()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
