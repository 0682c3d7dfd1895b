"""Scripted RooftopLanding expert: fly high, cross to the ground-truth site, descend, settle.

Privileged (reads the true state, the block's top and the best site from the env), so it proves
the task is solvable under the env's randomization rather than modelling perception:

1. Climb (or hold) to a cruise height 2 m above the highest point of the block, then cross to
   above the best site (``env.site``: centre of the largest clear circle) at up to 6 m/s.
2. Descend over the site with a sink rate that shrinks with the height above it (3 m/s high
   up, 0.3 m/s for the last metre), holding the site's xy.
3. On contact, ramp the thrust down to idle over 0.5 s, hold level until the env reports
   success.

Velocity loop -> desired acceleration (with an integral on the velocity error for wind, mass and
battery randomization) -> thrust vector (nominal mass, tilt-limited) -> SO(3) attitude error ->
CTBR body-rate command. Needs ``action_mode="ctbr"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simenvs.robots.quadrotor import GRAVITY

__all__ = ["RooftopLandingExpert"]


class RooftopLandingExpert:
    """Lands a ``RooftopLandingEnv`` quad on its ground-truth best site."""

    def __init__(
        self,
        env: Any,
        cruise_speed: float = 6.0,
        k_pos: float = 1.2,
        k_vel: float = 4.0,
        k_int: float = 1.5,
        k_att: float = 8.0,
        max_tilt_deg: float = 35.0,
    ):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        if self.env.action_mode != "ctbr":
            raise ValueError(
                f"RooftopLandingExpert needs action_mode='ctbr', got {self.env.action_mode!r}"
            )
        self.cruise_speed = cruise_speed
        self.k_pos, self.k_vel, self.k_int, self.k_att = k_pos, k_vel, k_int, k_att
        self.max_tilt = math.radians(max_tilt_deg)
        self.reset()

    def reset(self) -> None:
        self._int = np.zeros(3)
        self._phase = "cruise"
        self._settle_t = 0.0

    def act(self, obs: Any = None) -> np.ndarray:
        e = self.env
        q, d = e.quad, e.data
        dt = e.dt
        p = d.qpos[q.pos_slice].copy()
        v = d.qvel[q.vel_slice].copy()
        R = d.xmat[q.body_id].reshape(3, 3)
        site = e.site
        a = np.empty(4, dtype=np.float32)
        if site is None:  # nothing safe: hover in place
            target = np.array([p[0], p[1], p[2]])
        else:
            target = np.array([site.x, site.y, site.z])
        if e.landing_state()["touched_down"] and site is not None:
            self._phase = "settle"
        if self._phase == "settle":
            # ramp the motors down over 0.5 s (cutting them at the first corner contact drops
            # the quad onto its legs), keep level: let the legs settle
            self._settle_t += dt
            hover = q.p.hover_thrust_fraction
            frac = hover * max(0.0, 1.0 - self._settle_t / 0.5)
            a[0] = 2.0 * frac - 1.0
            a[1:] = np.clip(self.k_att * _level_axis(R) / np.asarray(q.p.max_rate), -1, 1)
            return a
        cruise = e.city.top + 2.0
        rel = target[:2] - p[:2]
        dist = float(np.hypot(*rel))
        v_ref = np.zeros(3)
        # horizontal: go to the site (only once high enough to clear everything)
        high = p[2] > cruise - 1.0
        if dist > 0.05 and (high or dist < 1.0):
            speed = min(self.cruise_speed, self.k_pos * dist)
            v_ref[:2] = rel / dist * speed
        # vertical: hold cruise until above the site, then descend
        if dist > 0.6:
            v_ref[2] = float(np.clip(1.5 * (cruise - p[2]), -2.0, 3.0))
        else:
            hgt = p[2] - target[2] - 0.5 * q.p.body_height
            v_ref[2] = -float(np.clip(0.6 * hgt, 0.25, 3.0)) if hgt > 1.0 else -0.25
        err = v_ref - v
        self._int = np.minimum(np.maximum(self._int + err * dt, -4.0), 4.0)
        acc = self.k_vel * err + self.k_int * self._int
        acc[0] = min(max(acc[0], -6.0), 6.0)
        acc[1] = min(max(acc[1], -6.0), 6.0)
        acc[2] = min(max(acc[2], -6.0), 8.0)
        pn = q.p
        m = pn.mass
        vb = R.T @ v
        f = m * (acc + np.array([0.0, 0.0, GRAVITY])) + R @ (np.asarray(pn.drag) * vb)
        fz = max(f[2], 0.3 * m * GRAVITY)
        fh = f[:2]
        fh_max = fz * math.tan(self.max_tilt)
        nh = float(np.hypot(*fh))
        if nh > fh_max:
            fh = fh * (fh_max / nh)
        f = np.array([fh[0], fh[1], fz])
        zd = f / math.sqrt(f @ f)
        yaw = math.atan2(R[1, 0], R[0, 0])  # keep the current heading
        xc = (math.cos(yaw), math.sin(yaw), 0.0)
        yd = _cross(zd, xc)
        yd /= math.sqrt(yd @ yd)
        xd = _cross(yd, zd)
        Rd = np.column_stack([xd, yd, zd])
        E = Rd.T @ R - R.T @ Rd
        e_r = 0.5 * np.array([E[2, 1], E[0, 2], E[1, 0]])
        w_cmd = -self.k_att * e_r
        a[0] = q.thrust_action(float(f @ R[:, 2]))
        a[1:] = np.clip(w_cmd / np.asarray(pn.max_rate), -1.0, 1.0)
        return a


def _cross(a, b) -> np.ndarray:  # np.cross costs ~20 us per call
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2],
                     a[0] * b[1] - a[1] * b[0]])  # fmt: skip


def _level_axis(R: np.ndarray) -> np.ndarray:
    """Body-frame rotation (axis * sin angle) taking body z to world z (yaw left free)."""
    z = R[2, :]  # world z in body axes
    return np.array([-z[1], z[0], 0.0])
