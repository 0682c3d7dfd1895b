"""Compiled pieces of ``BatchedVectorEnv``'s fast-path step (any task with ``BatchOps``).

The step's bookkeeping around the task's ops (action clipping; after the batch step the
physics checks and the reward / termination / truncation masks) was ~40 numpy calls on
``(num_envs,)`` arrays, each paying for the caches the batch step had just evicted; these
kernels do each phase in one pass over the sims. Comparisons, copies and a max: nothing to
round (the finiteness test sums each sim's state, as the numpy code did).
"""

from __future__ import annotations

import math

import numba

__all__ = ["clip_actions", "step_results"]

_jit = numba.njit(cache=True, nogil=True)


@_jit
def clip_actions(a, low, high, out):
    """``out = clip(a, low, high)`` row by row (``a``: (n, d); ``low``/``high``: (d,)).
    Returns the first row with a non-finite value, or -1."""
    bad = -1
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            x = a[i, k]
            if not math.isfinite(x):
                if bad < 0:
                    bad = i
                continue
            h = high[k]
            lo = low[k]
            x = x if x < h else h
            out[i, k] = x if x > lo else lo
    return bad


@_jit
def step_results(
    rows, warning, w_lo, w_hi, warn0, qpos, qvel, failed, steps, max_steps, term_in, reward_in,
    finished, rewards, terms, truncs, diverged, error, ok, trunc_ok,
):  # fmt: skip
    """The step's per-sim results into the env's arrays at ``rows[j]``.

    Physics errors: diverged (the sim's count of the bad-state warnings ``w_lo..w_hi-1`` grew
    past ``warn0``, which then moves up to it), a non-finite state, or a MuJoCo error
    (``failed``). Then the time-limit truncation; sims ``finished`` (reset right after this
    step) get nothing; errors get zero reward, no termination and a truncation. ``ok``: the
    sims whose step info counts; ``trunc_ok``: their time-limit truncations; ``error``: the
    errors of the sims not finished. Returns (any error, any trunc_ok)."""
    any_error = False
    any_tl = False
    for j in range(rows.shape[0]):
        i = rows[j]
        count = 0
        for w in range(w_lo, w_hi):
            count += warning[i, w, 1]
        div = count > warn0[i]
        s = 0.0
        for k in range(qpos.shape[1]):
            s += qpos[i, k]
        for k in range(qvel.shape[1]):
            s += qvel[i, k]
        err = div or not math.isfinite(s)
        if err and count > warn0[i]:
            warn0[i] = count
        err = err or failed[i]
        diverged[j] = div
        error[j] = err and not finished[i]
        term = term_in[j]
        trunc = steps[i] >= max_steps and not term
        r = reward_in[j]
        good = False
        if finished[i]:
            r = 0.0
            term = False
            trunc = False
        elif err:
            any_error = True
            r = 0.0
            term = False
            trunc = True
        else:
            good = True
        rewards[i] = r
        terms[i] = term
        truncs[i] = trunc
        ok[j] = good
        tl = trunc and good
        trunc_ok[j] = tl
        any_tl |= tl
    return any_error, any_tl
