"""Run any ``QuadrotorTask`` (DroneRace, RooftopLanding) on PyBullet instead of MuJoCo.

``PyBulletQuadMixin`` goes in front of a MuJoCo task class. The task stays the scene
description and the bookkeeper: it still builds and compiles its ``MjSpec``, samples and
applies its parameters, places its layout, maps actions to commands and evaluates reward,
crashes and success, so seeds, kwargs, spaces, ``info`` and randomization are the MuJoCo
env's by construction. What changes is who integrates the physics:

* the scene's geoms become PyBullet bodies (``BulletWorld``), the quad a PyBullet rigid
  body driven by the re-implemented motor / rate-loop / drag model (``BulletQuadrotor``);
* each control step, the commands the task wrote into ``data.ctrl`` (thrust and rates or
  rotor commands, wind in body axes) and ``data.xfrc_applied`` (ground effect) go to the
  PyBullet model, which runs ``frame_skip`` substeps of ``stepSimulation``;
* the resulting state (pose, velocities, motor states, actuator forces) is written back into
  ``MjData`` and ``mj_kinematics`` runs, so observations, the gate and landing logic and
  recorded sim states read PyBullet's state through the usual MuJoCo fields;
* contacts come from PyBullet (``quad_contacts``), images from TinyRenderer.

MuJoCo never steps in these envs: ``mj_step`` is not called after ``reset``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import mujoco
import numpy as np

from .quadrotor import BulletQuadrotor, QuadConstants, quat_rows
from .render import BulletRenderer
from .world import BulletWorld

__all__ = ["PyBulletQuadMixin", "CONTACT_TOLERANCE"]

CONTACT_TOLERANCE = 1e-3  # m: PyBullet manifold points closer than this count as touching
_IMPLICIT = (int(mujoco.mjtIntegrator.mjINT_IMPLICIT), int(mujoco.mjtIntegrator.mjINT_IMPLICITFAST))


class PyBulletQuadMixin:
    """Mixin: put it before a ``QuadrotorTask`` subclass to run that task on PyBullet.

    Extra keyword arguments: ``solver_iterations`` (PyBullet constraint solver iterations,
    default 50, PyBullet's own default).
    """

    engine = "pybullet"

    def __init__(self, *, solver_iterations: int = 50, **kwargs: Any):
        import pybullet as pb

        if int(solver_iterations) < 1:
            raise ValueError(f"solver_iterations must be >= 1, got {solver_iterations!r}")
        self._pb = pb
        self._solver_iterations = int(solver_iterations)
        self._pb_client = pb.connect(pb.DIRECT)
        self._world = BulletWorld(self._pb_client)
        self._bullet_model: mujoco.MjModel | None = None
        try:
            super().__init__(**kwargs)
            self._bullet_build()
        except BaseException:
            self._bullet_disconnect()
            raise

    # ------------------------------------------------------------------ PyBullet world
    @property
    def bullet_client(self) -> int:
        """The PyBullet physics client id of this env (DIRECT mode)."""
        return self._pb_client

    @property
    def bullet_quad(self) -> BulletQuadrotor:
        return self._bquad

    def _bullet_build(self) -> None:
        """(Re)create the PyBullet world from the current compiled model."""
        pb, c, m = self._pb, self._pb_client, self.model
        pb.resetSimulation(physicsClientId=c)
        pb.setGravity(*(float(g) for g in m.opt.gravity), physicsClientId=c)
        pb.setPhysicsEngineParameter(
            fixedTimeStep=float(m.opt.timestep), numSubSteps=0,
            numSolverIterations=self._solver_iterations, physicsClientId=c,
        )  # fmt: skip
        self._world.build(m, self.data, robot_geoms=[self.quad.collision_geom])
        friction = float(m.geom_friction[self.quad.collision_geom, 0])
        implicit = int(m.opt.integrator) in _IMPLICIT
        self._bquad = BulletQuadrotor(
            c, self.quad_params, self.action_mode, float(m.opt.timestep), friction=friction,
            implicit=implicit,
        )  # fmt: skip
        self._bullet_model = m
        self._bind_indices()
        if self._renderer is not None:
            self._renderer.world = self._world
            self._renderer.set_model(m)

    def sync_bullet_from_mujoco(self) -> None:
        """Push the quad state in ``MjData`` (pose, velocities, motor states, commands) and the
        episode's dynamics params to PyBullet. Reset calls it; call it after writing a state
        into ``env.data`` yourself (e.g. replaying a recorded ``sim_state``)."""
        d, q, bq = self.data, self.quad, self._bquad
        bq.set_constants(QuadConstants.from_values(self.quad_params, self.action_mode, self.params))
        bq.reset_state(
            d.qpos[q.pos_slice], d.qpos[q.quat_slice], d.qvel[q.vel_slice], d.qvel[q.angvel_slice]
        )
        bq.dyn.reset(d.act[q.act_adr], d.ctrl[q.cmd_ids], d.actuator_force[q.cmd_ids])
        self._read_commands()
        mujoco.mj_kinematics(self.model, d)
        self._world.sync_collision(d)
        self._world.appearance_dirty = True

    def _bind_indices(self) -> None:
        """Python slices/bounds of the quad's MjData entries (per-step fancy indexing on
        small arrays costs more than the physics)."""
        q, m = self.quad, self.model

        def sl(ids: np.ndarray) -> slice:
            ids = np.asarray(ids)
            if len(ids) and np.all(np.diff(ids) == 1):
                return slice(int(ids[0]), int(ids[-1]) + 1)
            raise ValueError(f"expected consecutive MuJoCo ids, got {ids.tolist()}")

        self._cmd_sl, self._drag_sl, self._act_sl = sl(q.cmd_ids), sl(q.drag_ids), sl(q.act_adr)
        self._ctrl_lo = m.actuator_ctrlrange[q.cmd_ids, 0].tolist()
        self._ctrl_hi = m.actuator_ctrlrange[q.cmd_ids, 1].tolist()
        self._dt_f = float(self.dt)

    def _read_commands(self) -> None:
        """Commands the task wrote into MjData (clamped to ctrlrange, as MuJoCo does)."""
        d, q = self.data, self.quad
        lo, hi = self._ctrl_lo, self._ctrl_hi
        ctrl = [min(max(c, lo[i]), hi[i]) for i, c in enumerate(d.ctrl[self._cmd_sl].tolist())]
        x = d.xfrc_applied[q.body_id].tolist()
        self._bquad.dyn.set_commands(ctrl, d.ctrl[self._drag_sl].tolist(), x[:3], x[3:])

    def _write_back(self) -> None:
        d, q, bq = self.data, self.quad, self._bquad
        pb, c, b = self._pb, self._pb_client, bq.body
        pos, (x, y, z, w) = pb.getBasePositionAndOrientation(b, physicsClientId=c)
        vel, om = pb.getBaseVelocity(b, physicsClientId=c)
        r = quat_rows(x, y, z, w)
        qp, qv = q.qpos_adr, q.qvel_adr
        d.qpos[qp : qp + 7] = (*pos, w, x, y, z)
        d.qvel[qv : qv + 6] = (
            *vel,
            r[0] * om[0] + r[3] * om[1] + r[6] * om[2],
            r[1] * om[0] + r[4] * om[1] + r[7] * om[2],
            r[2] * om[0] + r[5] * om[1] + r[8] * om[2],
        )
        dyn = bq.dyn
        d.act[self._act_sl] = dyn._a
        d.actuator_force[self._cmd_sl] = dyn._force
        d.actuator_force[self._drag_sl] = dyn._drag_f
        d.time += self._dt_f
        mujoco.mj_kinematics(self.model, d)

    # ------------------------------------------------------------------ SimEnv overrides
    def reset_task(self, rng: np.random.Generator) -> None:
        if self._pb_client is None:
            raise RuntimeError(f"{type(self).__name__} is closed (its PyBullet client is gone)")
        super().reset_task(rng)
        # the task recompiled its scene, or edited its static geometry in place (a new city
        # block): rebuild the PyBullet world (the render world follows on the next image)
        if self.model is not self._bullet_model or self._world.static_changed():
            self._bullet_build()
        self.sync_bullet_from_mujoco()

    def _integrate(self) -> None:
        """One control period of physics: ``frame_skip`` PyBullet substeps (the task's
        ``before_substep`` before each, if it has one), then the state back into MjData."""
        if self._world.has_moving_collision:
            mujoco.mj_kinematics(self.model, self.data)
            self._world.sync_collision(self.data)
        self._read_commands()
        bq = self._bquad
        for _ in range(self.frame_skip):
            if self._substep_hook:
                self.before_substep()
                self._read_commands()
            bq.substep()
        self._write_back()

    def quad_contacts(self) -> list[int]:
        """MuJoCo geom ids of the scene geoms PyBullet reports touching the quad."""
        pts = self._pb.getContactPoints(bodyA=self._bquad.body, physicsClientId=self._pb_client)
        return self._world.contact_geoms(self.data, (p for p in pts if p[8] <= CONTACT_TOLERANCE))

    def _ensure_renderer(self) -> BulletRenderer:
        if self._renderer is None:
            self._closed = False
            self._renderer = BulletRenderer(self._world)
        return self._renderer

    def close(self) -> None:
        super().close()
        self._bullet_disconnect()

    def _bullet_disconnect(self) -> None:
        if getattr(self, "_pb_client", None) is None:
            return
        with contextlib.suppress(Exception):  # already disconnected
            self._pb.disconnect(physicsClientId=self._pb_client)
        self._world.close()
        self._pb_client = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self._bullet_disconnect()
