#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with simenvs and its dependencies.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install -q "torch>=2.3"            # a CUDA build for machines with a GPU
  else
    pip install -q "torch==2.13.0"         # CPU machines: a known-good release (cached locally here)
  fi
fi
if ! pip install -q -e ".[dev]" >.venv/install.log 2>&1; then
  cat .venv/install.log; echo "bootstrap: pip install failed (log above, also in .venv/install.log)" >&2; exit 1
fi
.venv/bin/python -c "import simenvs, mujoco, torch, stable_baselines3; print('simenvs', simenvs.__version__, '| mujoco', mujoco.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
