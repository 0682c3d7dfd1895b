"""Trajectory data: the rollout file format, a recorder, a validating loader, a CSV importer.

Rollout file format (``simenvs.rollouts`` version 1)
====================================================

One ``.npz`` file (``numpy.savez_compressed``; read with ``np.load(path, allow_pickle=False)``:
no key may hold Python objects, and pickles are refused) holds the episodes of one env with one
observation layout and one control rate. Episode ``i`` has ``T_i`` actions and ``T_i + 1``
observations: ``obs[0]`` is the reset observation, ``obs[t]`` is what the policy saw before
``actions[t]`` and ``obs[t+1]`` what followed. Episodes are stored back to back.

=====================  ===========================  =============================================
key                    dtype / shape                meaning
=====================  ===========================  =============================================
``format``             str, 0-d                     always ``"simenvs.rollouts"``
``version``            int64, 0-d                   ``1``
``metadata``           str, 0-d                     JSON object, see below
``episode_lengths``    int, ``(E,)``                ``T_i`` (actions) of each episode, >= 0
``obs/<field>``        float, ``(N_obs, size)``     one key per field of ``obs_layout``;
                                                    ``N_obs = sum(T_i) + E``
``actions``            float, ``(N_act, A)``        ``N_act = sum(T_i)``; normalized env actions
``time``               float64, ``(N_obs,)``        seconds since the episode's reset, strictly
                                                    increasing within an episode
``rewards``            float, ``(N_act,)``          optional
``sim_state``          float, ``(N_obs, S)``        optional: MuJoCo integration state
                                                    (``mj_getState`` with ``sim_state_spec``) at
                                                    each observation, for replay from states
=====================  ===========================  =============================================

``metadata`` (JSON)::

    {
      "env_id": "simenvs/DroneRace-v0" | null,       # the env the data belongs to
      "source": "sim" | "proxy:hidden" | "hardware:..." | "csv:log.csv",
      "control_hz": 48.0,                            # control rate; median dt must be within 50 %
      "dt": 0.0208333,                               # 1 / control_hz (informative)
      "obs_layout": [["pos", 3, "m"], ["vel", 3, "m/s"], ...],   # order of the obs fields
      "action_layout": [["thrust", "N", 0.0, 20.0], ...] | null, # name, unit, value at -1, at +1
      "sim_state_spec": 32767 | null,                # mjtState bits (mjSTATE_INTEGRATION)
      "extra": {...},                                # free-form
      "episodes": [                                  # one entry per episode
        {"seed": 3 | null, "success": true | false | null, "terminated": bool,
         "truncated": bool, "params": {"layout.gates": [...], ...}}
      ]
    }

Per-episode ``params`` hold what is needed to rebuild the episode's scene in simulation
(``layout.*``); stand-in realities never write their hidden dynamics there.

``load_rollouts`` checks all of this and raises ``RolloutFormatError`` whose message lists every
problem (missing key, wrong dtype or shape, NaN at episode/step/field, episode lengths that do
not add up to the array lengths, time not increasing, dt that contradicts ``control_hz``...).
``validate_file`` returns that list instead of raising.

Writing: ``RolloutRecorder(env, path)`` records any env + policy; ``save_rollouts`` writes a
``Rollouts`` object; ``import_csv(path, mapping)`` converts hardware logs.
"""

from .csv_import import ColumnMapping, import_csv
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Episode,
    RolloutFormatError,
    Rollouts,
    concat_rollouts,
    load_rollouts,
    save_rollouts,
    validate_file,
)
from .recorder import (
    RolloutRecorder,
    action_layout_of,
    control_hz_of,
    obs_layout_of,
    obs_vector,
    set_sim_state,
    sim_state_of,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ColumnMapping",
    "Episode",
    "RolloutFormatError",
    "RolloutRecorder",
    "Rollouts",
    "action_layout_of",
    "concat_rollouts",
    "control_hz_of",
    "import_csv",
    "load_rollouts",
    "obs_layout_of",
    "obs_vector",
    "save_rollouts",
    "set_sim_state",
    "sim_state_of",
    "validate_file",
]
