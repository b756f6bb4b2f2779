"""Throughput of the MuJoCo robot tasks: how close batched evaluation comes to raw physics.

Rows (per task, K = 2):

* ``raw mj_step (C loop)``   — ``mj_step(model, data, nstep=N)``: MuJoCo alone, no Python per step;
* ``raw mj_step (Py loop)``  — one Python call per physics step, the floor any Python env pays;
* ``gym env, expert``        — ``MultimodalEnv.step`` one episode at a time, scripted expert acting;
* ``collect_demos``          — scripted expert rollouts, batched (B = 64 episodes in lockstep);
* ``evaluate, regression``   — closed-loop ``evaluate()`` of an (untrained) regression chunk policy,
  B = 64, one batched policy call per chunk (H = 8), i.e. what chapter 8 runs.

Throughput is given in env (control) steps/s and physics steps/s (= env steps × frame_skip);
``% raw`` compares physics steps/s with the C loop. Then render frames/s at the video size
(240×320) and at the image-observation size (64×64). Run: ``python benchmarks/env_throughput.py``.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("MBC_PROGRESS", "0")

import mujoco  # noqa: E402  (mbc_lib.envs sets MUJOCO_GL before this import when imported first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import mbc_lib.envs as E  # noqa: E402
from mbc_lib.control import ChunkExecutor  # noqa: E402


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs (s) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def raw_c(task, n: int = 200_000) -> float:
    d = mujoco.MjData(task.model)
    d.qpos[:] = task.initial_qpos(np.random.default_rng(0))
    d.ctrl[:] = 0.3  # moving, so contacts and limits get exercised
    dt, _ = timed(lambda: mujoco.mj_step(task.model, d, nstep=n))
    return n / dt


def raw_py(task, n: int = 100_000) -> float:
    d = mujoco.MjData(task.model)
    d.qpos[:] = task.initial_qpos(np.random.default_rng(0))
    d.ctrl[:] = 0.3
    m, step = task.model, mujoco.mj_step

    def run():
        for _ in range(n):
            step(m, d)

    dt, _ = timed(run)
    return n / dt


def gym_expert(env_id: str, episodes: int = 20) -> float:
    env = E.make(env_id)
    expert = E.make_expert(env_id)

    def run():
        steps = 0
        for s in range(episodes):
            obs, _ = env.reset(seed=s)
            done = False
            while not done:
                obs, _, term, trunc, _ = env.step(expert.act(obs, s % 2)[0])
                done, steps = term or trunc, steps + 1
        return steps

    dt, steps = timed(run)
    return steps / dt


def demos(env_id: str, episodes: int = 128) -> float:
    dt, (_, trajs) = timed(lambda: E.collect_demos(env_id, episodes, 0, batch_size=64, return_trajectories=True))
    return sum(len(t) for t in trajs) / dt


def evaluation(env_id: str, episodes: int = 128) -> float:
    from mbc_lib import policies

    task = E.make_task(env_id)
    policy = policies.make("regression", seed=0, obs_dim=task.obs_dim, action_dim=2, chunk_len=8)
    dt, res = timed(lambda: E.evaluate(policy, env_id, episodes, seed=0, executor=ChunkExecutor(8), batch_size=64))
    return int(res.lengths.sum()) / dt


def render_fps(task, height: int, width: int, frames: int = 60) -> float:
    qpos = np.tile(task.initial_qpos(np.random.default_rng(0)), (frames, 1))
    dt, _ = timed(lambda: E.render_trajectory(task, qpos, height, width), repeat=2)
    return frames / dt


def main() -> None:
    torch.set_num_threads(1)
    print(f"mujoco {mujoco.__version__}, torch {torch.__version__}, {os.cpu_count()} CPU cores, "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')}")
    header = f"{'task':<18} {'what':<26} {'env steps/s':>12} {'phys steps/s':>13} {'% raw':>6}"
    print(header)
    print("-" * len(header))
    for env_id in E.ENV_IDS:
        task = E.make_task(env_id)
        fs = task.frame_skip
        base = raw_c(task)
        rows = [
            ("raw mj_step (C loop)", base / fs, base),
            ("raw mj_step (Py loop)", raw_py(task) / fs, None),
            ("gym env, expert", gym_expert(env_id), None),
            ("collect_demos (B=64)", demos(env_id), None),
            ("evaluate, regression B=64", evaluation(env_id), None),
        ]
        for what, env_sps, phys in rows:
            phys = env_sps * fs if phys is None else phys
            print(f"{env_id:<18} {what:<26} {env_sps:>12,.0f} {phys:>13,.0f} {100 * phys / base:>5.0f}%")
    doc = E.doctor()
    if not doc.ok:
        print(f"render: skipped — {doc.message}")
        return
    task = E.make_task(E.ENV_IDS[0])
    for h, w in ((240, 320), (64, 64)):
        print(f"render {h}x{w} ({doc.backend}): {render_fps(task, h, w):,.0f} frames/s")


if __name__ == "__main__":
    main()
