"""Training and sampling throughput of every policy family on the active device.

    python benchmarks/train_throughput.py                 # fork task, default backbone (256 x 3)
    python benchmarks/train_throughput.py --task ring --width 128 --depth 2 --device cpu

For each family: training samples/s through ``mbc_lib.train.train`` (AdamW, EMA, clipping,
bf16 autocast on CUDA — the real loop), and sampling chunks/s through ``policy.sample`` with
the family's default sampler (DDIM 20 steps, Euler 10 steps, ...). Same task, same backbone
for every family, so the table compares parameterisations, not capacities.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from mbc_lib import policies, tasks
from mbc_lib.train import select_device, train

TASKS = {"fork": dict(K=2, delta=2.0), "ring": dict(K=4)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def sampler_note(policy: policies.Policy) -> str:
    cfg = policy.config
    if policy.family == "diffusion":
        return f"{cfg.sampler} {cfg.steps} steps"
    if policy.family == "flow":
        return f"{cfg.solver} {cfg.steps} steps"
    if policy.family == "cvae":
        return f"decode from {cfg.decode_from}"
    return "one pass"


def bench_family(name: str, task, data, args, device: torch.device) -> dict[str, float | str]:
    policy = policies.make(
        name, seed=0, obs_dim=task.obs_dim, action_dim=task.action_dim, chunk_len=task.chunk_len,
        width=args.width, depth=args.depth,
    )
    kw = dict(batch_size=args.batch_size, device=device, progress=False, log_every=10**9)
    train(policy, data, steps=args.warmup, **kw)  # warm-up: allocator, kernels, normaliser
    _sync(device)
    start = time.perf_counter()
    train(policy, data, steps=args.steps, normalize=False, **kw)
    _sync(device)
    train_rate = args.steps * args.batch_size / (time.perf_counter() - start)

    obs = task.sample_obs(args.sample_batch, torch.Generator().manual_seed(0)).to(device)
    gen = torch.Generator(device=device).manual_seed(0) if device.type != "mps" else None
    policy.sample(obs, args.n, generator=gen)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.sample_reps):
        policy.sample(obs, args.n, generator=gen)
    _sync(device)
    sample_rate = args.sample_reps * args.sample_batch * args.n / (time.perf_counter() - start)
    n_params = sum(p.numel() for p in policy.parameters())
    return {"family": name, "params": n_params, "train": train_rate, "sample": sample_rate, "sampler": sampler_note(policy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="fork")
    parser.add_argument("--families", nargs="*", default=None, help="default: every registered family")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed training steps first")
    parser.add_argument("--sample-batch", type=int, default=256, help="observations per sample call")
    parser.add_argument("--n", type=int, default=16, help="chunks per observation per sample call")
    parser.add_argument("--sample-reps", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: cuda > mps > cpu)")
    args = parser.parse_args()
    os.environ.setdefault("MBC_PROGRESS", "0")

    device = select_device(args.device)
    task = tasks.make(args.task, **TASKS[args.task])
    data = task.dataset(8192, seed=0)
    families = args.families or policies.families()
    threads = f" (threads: {torch.get_num_threads()})" if device.type == "cpu" else ""
    print(
        f"device: {device}{threads} | task: {args.task} (H={task.chunk_len}, d={task.action_dim}) | "
        f"backbone: width {args.width}, depth {args.depth} | batch {args.batch_size} | "
        f"sampling {args.sample_batch} obs x {args.n} chunks"
    )
    header = f"{'family':<11} {'params':>9} {'train samples/s':>16} {'sample chunks/s':>16}  sampler"
    print(header)
    print("-" * len(header))
    for name in families:
        r = bench_family(name, task, data, args, device)
        print(f"{r['family']:<11} {r['params']:>9,} {r['train']:>16,.0f} {r['sample']:>16,.0f}  {r['sampler']}", flush=True)


if __name__ == "__main__":
    main()
