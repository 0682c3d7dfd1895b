"""Unmodeled effects a stand-in reality adds on top of a simenvs env (Gymnasium wrappers).

Each is something the simulator's parameter space cannot express, so SimOpt must find the
best compromise rather than an exact match, as on hardware: extra actuation latency, sensor
noise on the recorded observations, and a motor non-linearity between command and actuator.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["ExtraLatency", "SensorNoise", "MotorNonlinearity", "EFFECTS"]


def _neutral(env: gym.Env) -> np.ndarray:
    base = env.unwrapped
    if hasattr(base, "neutral_action"):
        return np.asarray(base.neutral_action(), dtype=np.float64)
    return np.zeros(env.action_space.shape, dtype=np.float64)


class ExtraLatency(gym.Wrapper):
    """Actions reach the env ``steps`` control steps late (on top of any modeled latency)."""

    def __init__(self, env: gym.Env, steps: int = 1):
        super().__init__(env)
        if int(steps) < 0:
            raise ValueError(f"latency steps must be >= 0, got {steps}")
        self.steps = int(steps)
        self._queue: deque = deque()

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._queue = deque([_neutral(self.env)] * self.steps)
        return out

    def step(self, action):
        self._queue.append(np.asarray(action, dtype=np.float64))
        return self.env.step(self._queue.popleft())


class SensorNoise(gym.Wrapper):
    """Gaussian noise (``std`` in observation units, scalar or per dimension) on the flat
    state observation (``obs`` itself, or ``obs["state"]`` of dict observations)."""

    def __init__(self, env: gym.Env, std: float | np.ndarray = 0.01, seed: int | None = None):
        super().__init__(env)
        self.std = np.asarray(std, dtype=np.float64)
        if np.any(self.std < 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"noise std must be finite and >= 0, got {std!r}")
        self.rng = np.random.default_rng(seed)

    def _noisy(self, obs: Any) -> Any:
        if isinstance(obs, dict):
            if "state" not in obs:
                return obs
            return {**obs, "state": self._noisy(obs["state"])}
        arr = np.asarray(obs)
        if arr.dtype.kind != "f":
            return obs  # images are left to the env's own sensor model
        return (arr + self.rng.normal(0.0, 1.0, arr.shape) * self.std).astype(arr.dtype)

    def reset(self, **kwargs):
        seed = kwargs.get("seed")
        if seed is not None:
            self.rng = np.random.default_rng([int(seed), 0x5E50])
        obs, info = self.env.reset(**kwargs)
        return self._noisy(obs), info

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return self._noisy(obs), r, term, trunc, info


class MotorNonlinearity(gym.ActionWrapper):
    """Command -> actuator curve ``gain * u^gamma`` that the simulator does not model.

    ``u`` is the command's magnitude in its physical range: for one-sided quantities (the
    env's ``action_layout`` maps -1 or +1 to 0, e.g. collective thrust 0..max) ``u`` runs
    from 0 at that end to 1 at the other, so zero stays zero; for two-sided ones (rates,
    forces) it is ``|a|`` with the sign kept. ``gamma > 1`` makes mid-range commands weaker
    than modeled; ``gain < 1`` is a motor weaker than nominal at full command.
    """

    def __init__(self, env: gym.Env, gamma: float = 1.1, gain: float = 1.0):
        super().__init__(env)
        if gamma <= 0 or gain <= 0:
            raise ValueError(f"gamma and gain must be > 0, got {gamma}, {gain}")
        self.gamma, self.gain = float(gamma), float(gain)
        space = env.action_space
        self._lo = np.asarray(space.low, np.float64)
        self._hi = np.asarray(space.high, np.float64)
        self._unipolar = np.zeros(self._lo.shape, dtype=bool)
        layout = getattr(env.unwrapped, "action_layout", None)
        if layout is not None:
            phys = layout()
            if len(phys) == self._lo.size:
                self._unipolar = np.array([lo == 0.0 or hi == 0.0 for _, _, lo, hi in phys])
                self._zero_at_low = np.array([lo == 0.0 for _, _, lo, _ in phys])

    def action(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), self._lo, self._hi)
        mid, half = 0.5 * (self._hi + self._lo), 0.5 * (self._hi - self._lo)
        s = (a - mid) / half  # in [-1, 1]
        two = np.sign(s) * self.gain * np.abs(s) ** self.gamma
        out = two
        if self._unipolar.any():
            u = np.where(self._zero_at_low, (s + 1) / 2, (1 - s) / 2)  # 0 where physical 0
            u = self.gain * u**self.gamma
            one = np.where(self._zero_at_low, 2 * u - 1, 1 - 2 * u)
            out = np.where(self._unipolar, one, two)
        return mid + half * out


# name -> (wrapper, default kwargs)
EFFECTS: dict[str, tuple[type, dict[str, Any]]] = {
    "latency": (ExtraLatency, {"steps": 1}),
    "noise": (SensorNoise, {"std": 0.01}),
    "motor": (MotorNonlinearity, {"gamma": 1.1, "gain": 1.0}),
}
