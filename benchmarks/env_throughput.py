"""Throughput of the MuJoCo robot tasks: how close batched evaluation comes to raw physics.

Rows (per task, K = 2), each on its own episodes:

* ``collect_demos``     — scripted expert rollouts, batched (B = 64 episodes in lockstep);
* ``evaluate``          — closed-loop ``evaluate()`` of an (untrained, seeded) regression chunk
  policy, B = 64, one batched policy call per chunk (H = 8): what chapter 8 runs;
* ``gym env``           — ``MultimodalEnv.step`` one episode at a time, the expert acting.

``raw`` is MuJoCo alone on the *same* episodes: the recorded controls replayed from the same
start states by ``mujoco.rollout`` (C, one thread, no Python per step) — so contact-rich
pushing is compared with contact-rich pushing. Throughput is in env (control) steps/s and
physics steps/s (= env steps × frame_skip); ``% raw`` = physics steps/s ÷ raw. Then render
frames/s at the video size (240×320) and the image-observation size (64×64).
Run: ``python benchmarks/env_throughput.py``.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("MBC_PROGRESS", "0")

import mbc_lib.envs as E  # noqa: E402  (first: it sets MUJOCO_GL=egl before mujoco is imported)
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mujoco import rollout  # noqa: E402

from mbc_lib.control import ChunkExecutor  # noqa: E402

B, EPISODES = 64, 128


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs (s) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def raw_replay(task, starts: list[np.ndarray], controls: list[np.ndarray]) -> float:
    """Physics steps/s of ``mujoco.rollout`` replaying ``controls [T, nu]`` (held frame_skip steps each)."""
    m, d = task.model, mujoco.MjData(task.model)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    states, ctrls = [], []
    for q0, u in zip(starts, controls):
        mujoco.mj_resetData(m, d)
        d.qpos[:] = q0
        s = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, d, s, spec)
        states.append(s[None])
        ctrls.append(np.repeat(u, task.frame_skip, axis=0)[None])  # [1, T·fs, nu]

    def run():
        for s, u in zip(states, ctrls):
            rollout.rollout(m, d, s, u)

    dt, _ = timed(run)
    return sum(u.shape[1] for u in ctrls) / dt


def demos_row(env_id: str):
    task = E.make_env_task(env_id)
    dt, (_, trajs) = timed(lambda: E.collect_demos(env_id, EPISODES, 0, batch_size=B, return_trajectories=True))
    env_steps = sum(len(t) for t in trajs)
    raw = raw_replay(task, [t.qpos[0] for t in trajs], [t.actions for t in trajs])
    return env_steps / dt, raw


def evaluate_row(env_id: str):
    from mbc_lib import policies

    task = E.make_env_task(env_id)
    policy = policies.make("regression", seed=0, obs_dim=task.obs_dim, action_dim=2, chunk_len=8)
    run = lambda record=False: E.evaluate(policy, env_id, EPISODES, 0, ChunkExecutor(8), batch_size=B, record=record)  # noqa: E731
    dt, res = timed(run)
    rec = run(record=True)  # the same episodes again (deterministic), now with their controls
    raw = raw_replay(task, [q[0] for q in rec.qpos], rec.actions)
    return int(res.lengths.sum()) / dt, raw


def gym_row(env_id: str, episodes: int = 20):
    env, expert, task = E.make(env_id), E.make_expert(env_id), E.make_env_task(env_id)
    starts, controls = [], []

    def run():
        steps = 0
        starts.clear(), controls.clear()
        for s in range(episodes):
            obs, _ = env.reset(seed=s)
            starts.append(env.sim.qpos[0].copy())
            acts, done = [], False
            while not done:
                a = expert.act(obs, s % 2)[0]
                obs, _, term, trunc, _ = env.step(a)
                acts.append(a)
                done, steps = term or trunc, steps + 1
            controls.append(np.stack(acts))
        return steps

    dt, steps = timed(run)
    return steps / dt, raw_replay(task, starts, controls)


def render_fps(task, height: int, width: int, frames: int = 60) -> float:
    qpos = np.tile(task.initial_qpos(np.random.default_rng(0)), (frames, 1))
    dt, _ = timed(lambda: E.render_trajectory(task, qpos, height, width), repeat=2)
    return frames / dt


def main() -> None:
    torch.set_num_threads(1)
    print(
        f"mujoco {mujoco.__version__}, torch {torch.__version__}, {os.cpu_count()} CPU cores, "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')}"
    )
    header = f"{'task':<16} {'what':<28} {'env steps/s':>11} {'phys steps/s':>12} {'raw phys/s':>11} {'% raw':>6}"
    print(header)
    print("-" * len(header))
    for env_id in E.ENV_IDS:
        fs = E.make_env_task(env_id).frame_skip
        rows = [
            (f"collect_demos (B={B})", demos_row(env_id)),
            (f"evaluate, regression (B={B})", evaluate_row(env_id)),
            ("gym env + expert (B=1)", gym_row(env_id)),
        ]
        for what, (env_sps, raw) in rows:
            print(
                f"{env_id.split('/')[1]:<16} {what:<28} {env_sps:>11,.0f} {env_sps * fs:>12,.0f} "
                f"{raw:>11,.0f} {100 * env_sps * fs / raw:>5.0f}%"
            )
    doc = E.doctor()
    if not doc.ok:
        print(f"render: skipped — {doc.message}")
        return
    task = E.make_env_task(E.ENV_IDS[0])
    for h, w in ((240, 320), (64, 64)):
        print(f"render {h}x{w} ({doc.backend}): {render_fps(task, h, w):,.0f} frames/s")


if __name__ == "__main__":
    main()
