"""Scripted RooftopLanding expert: hold altitude, cross to the target site, descend, settle.

A memoryless function of what the ``"state"`` observation holds (position, velocity, attitude,
the site's relative position, the altitude above the surface below, the 3 x 3 clearance grid
and the last action), read noise-free from the env, so behaviour cloning and DAgger can copy it
into a policy that sees only that observation:

1. Away from the site, hold altitude (the quad starts above everything in the block) and
   climb when anything in the clearance grid is less than ``clear_min`` below; fly toward the
   site at up to ``cruise_speed`` while clear of the surroundings.
2. Within about a metre of the site, descend with a sink rate that shrinks with the height
   above it (3 m/s high up, 0.2 m/s for the last metre), holding the site's xy. The two
   vertical laws are blended by distance, so the command is continuous (easier to clone).
3. Touch down at that sink rate and keep commanding it: on the roof the velocity loop then
   asks for 80 % of hover thrust, which keeps the quad pressed down until it has settled.
   The thrust is divided by the ground-effect factor of the measured altitude, so the rotor
   cushion of the last centimetres does not stall the descent.

Velocity loop (P only, a stiff vertical gain instead of an integral so the thrust bias from the
mass/thrust randomization stays under 0.2 m/s of sink) -> thrust vector (nominal mass and drag,
tilt-limited, heading held along world +x so every episode flies in the same frame) -> SO(3)
attitude error -> CTBR body-rate command. Needs ``action_mode="ctbr"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simenvs.robots.quadrotor import GRAVITY, ground_effect_factor

__all__ = ["RooftopLandingExpert"]


class RooftopLandingExpert:
    """Lands a ``RooftopLandingEnv`` quad on its target site (``env.site``)."""

    def __init__(
        self,
        env: Any,
        cruise_speed: float = 6.0,
        k_pos: float = 1.2,
        k_vel: float = 4.0,
        k_vel_z: float = 10.0,
        k_att: float = 8.0,
        max_tilt_deg: float = 35.0,
        clear_min: float = 2.5,
    ):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        if self.env.action_mode != "ctbr":
            raise ValueError(
                f"RooftopLandingExpert needs action_mode='ctbr', got {self.env.action_mode!r}"
            )
        self.cruise_speed = cruise_speed
        self.k_pos, self.k_vel, self.k_vel_z, self.k_att = k_pos, k_vel, k_vel_z, k_att
        self.max_tilt = math.radians(max_tilt_deg)
        self.clear_min = clear_min

    def reset(self) -> None:
        """Stateless: nothing to reset."""

    def act(self, obs: Any = None) -> np.ndarray:
        e = self.env
        q, d = e.quad, e.data
        pn = q.p
        p = d.qpos[q.pos_slice].copy()
        v = d.qvel[q.vel_slice].copy()
        R = np.array(q.rot_list()).reshape(3, 3)
        site = e.site
        a = np.empty(4, dtype=np.float32)
        target = p if site is None else np.array([site.x, site.y, site.z])
        clear = float(np.min(e.clearance_grid()))
        rel = target[:2] - p[:2]
        dist = float(np.hypot(*rel))
        v_ref = np.zeros(3)
        if dist > 0.05 and (clear > 1.5 or dist < 1.0):
            speed = min(self.cruise_speed, self.k_pos * dist)
            v_ref[:2] = rel / dist * speed
        vz_cruise = min(max(1.5 * (self.clear_min - clear), 0.0), 3.0)
        hgt = p[2] - target[2] - 0.5 * pn.body_height
        vz_land = -min(max(0.6 * hgt - 0.4, 0.2), 3.0)  # continuous: 0.2 m/s below 1 m
        w = min(max((1.0 - dist) / 0.4, 0.0), 1.0)  # 1 within 0.6 m of the site, 0 beyond 1 m
        v_ref[2] = w * vz_land + (1.0 - w) * vz_cruise
        err = v_ref - v
        acc = np.array([self.k_vel * err[0], self.k_vel * err[1], self.k_vel_z * err[2]])
        acc[0] = min(max(acc[0], -6.0), 6.0)
        acc[1] = min(max(acc[1], -6.0), 6.0)
        acc[2] = min(max(acc[2], -6.0), 8.0)
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
        xc = (1.0, 0.0, 0.0)  # head along world +x: one frame for every episode (see act)
        yd = _cross(zd, xc)
        yd /= math.sqrt(yd @ yd)
        xd = _cross(yd, zd)
        Rd = np.column_stack([xd, yd, zd])
        E = Rd.T @ R - R.T @ Rd
        e_r = 0.5 * np.array([E[2, 1], E[0, 2], E[1, 0]])
        w_cmd = -self.k_att * e_r
        thrust = float(f @ R[:, 2])
        if e.ground_effect:  # the altimeter tells how much the ground cushions the rotors
            thrust /= ground_effect_factor(e.altitude(), pn.prop_radius)
        a[0] = q.thrust_action(thrust)
        a[1:] = np.clip(w_cmd / np.asarray(pn.max_rate), -1.0, 1.0)
        return a


def _cross(a, b) -> np.ndarray:  # np.cross costs ~20 us per call
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2],
                     a[0] * b[1] - a[1] * b[0]])  # fmt: skip
