"""Dependency-light runtime for exported policies: imports only numpy and onnxruntime.

Runs on a robot computer with neither torch, mujoco, gymnasium nor stable-baselines3::

    from simenvs.deploy import Policy
    policy = Policy.load("exports/grasp")      # directory written by `simenvs export`
    action = policy(obs)                       # physical units, see policy.action_names/units
    policy.latency()                           # {"p50_ms": ..., "p99_ms": ...}

The export format (file names, graph inputs/outputs, metadata keys) is in
`simenvs.deploy.format`.
"""

from simenvs.deploy.format import FORMAT_VERSION
from simenvs.deploy.policy import ExportFormatError, InputSpec, ObservationError, Policy

__all__ = ["FORMAT_VERSION", "ExportFormatError", "InputSpec", "ObservationError", "Policy"]
