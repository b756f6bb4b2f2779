"""Training throughput of every policy family, against a conventional reference loop.

    python benchmarks/train_throughput.py                  # fork task, width 128 x depth 3, batch 256
    python benchmarks/train_throughput.py --width 256 --depth 3 --device cpu --repeats 5

For each family, samples/s of

* **mbc_lib** — ``mbc_lib.train.train``, the real loop: the dataset on the device, minibatches
  as index gathers, multi-tensor AdamW, warm-up + cosine LR, gradient clipping, EMA, bf16
  autocast on CUDA, one intra-op thread for models < 2M parameters on a CPU;
* **reference** — the conventional PyTorch recipe at the *same* model (same network object
  type, width, depth) and batch: a ``torch.utils.data.DataLoader`` over a map-style
  ``Dataset`` (per-sample ``__getitem__`` + collate, shuffled), a host-to-device copy per
  batch (pinned on CUDA), the default AdamW step with clipping and an LR schedule, torch's
  default threads. For ``diffusion`` the reference is the Diffusion Policy recipe: the noise
  and noisy sample come from diffusers' ``DDPMScheduler`` (squared-cosine schedule,
  ε-prediction, T = 100) — that row is skipped with a message when diffusers is missing
  (``pip install -e ".[bench]"``). The reference does no EMA (a conservative choice: EMA
  only adds to its time).

The reference runs twice: with torch's default intra-op threads (what the conventional loop
gets) and with one thread (what ``train`` picks for these models), so that the gain of the
data path and the gain of the thread setting can be told apart. Each cell is the median
[min–max] of ``--repeats`` timings, alternating the loops so that all see the same load.
The ratio columns are median over median; the goal is ≥ 2× on a CPU.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MBC_PROGRESS", "0")

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from mbc_lib import policies, tasks  # noqa: E402
from mbc_lib.benchmarking import machine_line, median_range, sync, table  # noqa: E402
from mbc_lib.runtime import select_device  # noqa: E402
from mbc_lib.train import train  # noqa: E402

TASKS = {"fork": dict(K=2, delta=2.0), "ring": dict(K=4)}


class MapDataset(Dataset):
    """The conventional map-style dataset: one (obs, chunk) pair per ``__getitem__``."""

    def __init__(self, obs: torch.Tensor, chunks: torch.Tensor):
        self.obs, self.chunks = obs.cpu(), chunks.cpu()

    def __len__(self) -> int:
        return len(self.obs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"obs": self.obs[i], "chunk": self.chunks[i]}


def _reference_diffusion_loss(policy, scheduler):
    """Diffusion Policy's training loss with diffusers' scheduler on the policy's own network."""
    T = scheduler.config.num_train_timesteps

    def loss(batch):
        obs, chunk = policy.check_batch(batch)
        x0 = chunk.flatten(1)
        noise = torch.randn_like(x0)
        t = torch.randint(0, T, (x0.shape[0],), device=x0.device).long()
        noisy = scheduler.add_noise(x0, noise, t)
        pred = policy.net(torch.cat([obs, noisy], dim=-1), t.float() / T)
        return torch.nn.functional.mse_loss(pred, noise)

    return loss


def reference_loop(policy, data, steps: int, batch_size: int, device: torch.device, loss_fn=None) -> None:
    """``steps`` optimiser steps of the conventional loop (DataLoader, per-batch copies)."""
    loader = DataLoader(MapDataset(data.obs, data.chunks), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=0, pin_memory=device.type == "cuda")
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = loss_fn or (lambda b: policy.loss(b)["loss"])
    policy.train()
    done = 0
    while done < steps:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = loss_fn(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            sched.step()
            done += 1
            if done == steps:
                break


def bench_family(name: str, task, data, args, device: torch.device) -> list[object]:
    def build():
        return policies.make(name, seed=0, obs_dim=task.obs_dim, action_dim=task.action_dim,
                             chunk_len=task.chunk_len, width=args.width, depth=args.depth)

    ours_pol, ref_pol = build(), build()
    ref_pol.to(device)
    ref_pol.normalizer.fit(data.to(device))
    loss_fn, ref_note = None, "DataLoader + policy.loss"
    if name == "diffusion":
        try:
            from diffusers import DDPMScheduler
        except ImportError:
            print("[skip] diffusion reference: diffusers is not installed (pip install -e \".[bench]\")")
            ref_pol = None
        else:
            sch = DDPMScheduler(num_train_timesteps=ref_pol.config.num_train_steps, beta_schedule="squaredcos_cap_v2",
                                prediction_type="epsilon", clip_sample=True)
            loss_fn, ref_note = _reference_diffusion_loss(ref_pol, sch), "DataLoader + diffusers DDPMScheduler"
    kw = dict(batch_size=args.batch_size, device=device, progress=False, log_every=10**9)
    train(ours_pol, data, steps=args.warmup, **kw)  # warm-up: allocator, kernels, normaliser
    if ref_pol is not None:
        reference_loop(ref_pol, data, args.warmup, args.batch_size, device, loss_fn)
    ours, ref, ref1 = [], [], []
    default_threads = torch.get_num_threads()
    for _ in range(args.repeats):  # alternate, so all loops see the same load
        sync(device)
        t0 = time.perf_counter()
        train(ours_pol, data, steps=args.steps, normalize=False, **kw)
        sync(device)
        ours.append(args.steps * args.batch_size / (time.perf_counter() - t0))
        if ref_pol is not None:
            for threads, out in ((default_threads, ref), (1, ref1)):
                torch.set_num_threads(threads)
                try:
                    t0 = time.perf_counter()
                    reference_loop(ref_pol, data, args.steps, args.batch_size, device, loss_fn)
                    sync(device)
                    out.append(args.steps * args.batch_size / (time.perf_counter() - t0))
                finally:
                    torch.set_num_threads(default_threads)
    n_params = sum(p.numel() for p in ours_pol.parameters())
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    if not ref:
        return [name, f"{n_params:,}", median_range(ours), "skipped", "-", "skipped", "-", "diffusers missing"]
    return [name, f"{n_params:,}", median_range(ours), median_range(ref), f"{med(ours) / med(ref):.2f}x",
            median_range(ref1), f"{med(ours) / med(ref1):.2f}x", ref_note]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="fork")
    parser.add_argument("--families", nargs="*", default=None, help="default: every registered family")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed training steps first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-demos", type=int, default=8192)
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: cuda > mps > cpu)")
    args = parser.parse_args()

    device = select_device(args.device)
    task = tasks.make(args.task, **TASKS[args.task])
    data = task.dataset(args.n_demos, seed=0)
    families = args.families or policies.families()
    print("== training throughput: mbc_lib.train vs a conventional DataLoader loop (samples/s)")
    print(machine_line(device))
    print(f"task {args.task} (H={task.chunk_len}, d={task.action_dim}), {args.n_demos} demos | backbone width "
          f"{args.width} x depth {args.depth} | batch {args.batch_size} | {args.steps} steps x {args.repeats} repeats "
          f"| mbc_lib threads: 1 below 2M params (MBC_THREADS={os.environ.get('MBC_THREADS', 'unset')}), "
          f"reference threads: {torch.get_num_threads()}")
    rows = []
    for name in families:
        rows.append(bench_family(name, task, data, args, device))
        print(f"  done {name}", flush=True)
    print(table(["family", "params", "mbc_lib samples/s", f"reference ({torch.get_num_threads()} thr)", "ratio",
                 "reference (1 thr)", "ratio", "reference"], rows))
    if device.type != "cuda":
        print("CUDA rows: not measured (no GPU on this machine)")
    print(f"load after: {machine_line(device).rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
