"""``simenvs/DroneRace-v0`` on PyBullet: the MuJoCo task's scene, rules and spaces, PyBullet's
physics and TinyRenderer images (see ``simenvs.pybullet.engine``)."""

from __future__ import annotations

from simenvs.envs.drone_race.env import DroneRaceEnv

from .engine import PyBulletQuadMixin

__all__ = ["PyBulletDroneRaceEnv"]


class PyBulletDroneRaceEnv(PyBulletQuadMixin, DroneRaceEnv):
    """``DroneRaceEnv`` integrated by PyBullet.

    Same keyword arguments, observation/action spaces, reward, ``info`` and randomization as
    ``DroneRaceEnv`` (a seed gives the same track, gates and start in both engines), plus
    ``solver_iterations``. Gate passes and frame hits use the task's own geometric
    classifier on the PyBullet trajectory.
    """
