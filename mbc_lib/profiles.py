"""Run profiles: one notebook, three budgets (the book's *How to use this course*, Profiles).

``MBC_PROFILE`` selects how much compute an experiment spends:

* ``fast``     — CI and nbval: seconds per notebook on 2 CPU cores, tiny models;
* ``standard`` — the default, on every device: minutes per notebook;
* ``full``     — opt-in (``MBC_PROFILE=full``), sized for a GPU: wider grids and larger models
  (width 256 × depth 3, batch 512). These MLPs are launch-bound on a GPU: one training step
  took 4.6 ms (regression) to 7.9 ms (cvae), 12 ms (vq) and 110 ms (Sinkhorn-WAE) on the H200
  lent to this project, so a notebook takes seconds (ch. 2) to ~2 min (ch. 3, measured) and
  ~12 min for the heaviest (ch. 7: 66 trainings of 1,500 steps, estimated). ``make full-gpu``
  measures it; run notebooks one at a time (processes sharing one GPU slow each other down).

Experiments never branch on the profile by hand: they call :func:`budget` with
their own name and get the sizes from :data:`BUDGETS`, the one table of sizes.
"""
from __future__ import annotations

import os
from typing import Any

PROFILES = ("fast", "standard", "full")

#: The one table of sizes: experiment name -> profile -> keyword arguments.
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    # chapter 1: regression on the fork task, one model per (K, Δ) grid point
    "averaging": {
        "fast": dict(n_demos=512, steps=300, width=64, depth=2, batch_size=256, n_eval=64),
        "standard": dict(n_demos=4096, steps=2000, width=128, depth=3, batch_size=256, n_eval=256),
        "full": dict(n_demos=16384, steps=3000, width=256, depth=3, batch_size=512, n_eval=512),
    },
    # chapter 3: one CVAE per KL weight β = ratio·β* on the fork (+ two ACT-style models);
    # measured at n_states states with n_per_state demos each and n_prior prior samples
    "latent": {
        "fast": dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2,
                     ratios=(0.1, 0.5, 0.8, 1.25, 2.0), n_states=4, n_per_state=256, n_prior=256),
        "standard": dict(n_demos=4096, steps=1500, width=128, depth=3, batch_size=256, lr=1e-3, latent_dim=2,
                         ratios=(0.1, 0.3, 0.5, 0.7, 0.85, 1.0, 1.15, 1.5, 2.0), n_states=8, n_per_state=256,
                         n_prior=512),
        "full": dict(n_demos=16384, steps=3000, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     ratios=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25,
                             1.5, 2.0), n_states=16, n_per_state=512, n_prior=1024),
    },
    # chapter 4: one CVAE per prior-coverage variant (mbc_lib.experiments.prior_coverage.VARIANTS);
    # Sinkhorn only in full: POT's solver costs ~0.3 s per training step on a CPU (~8 min at 1500 steps)
    "prior_coverage": {
        "fast": dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2,
                     variants=("weak KL", "learned prior", "MMD (WAE)", "ACT (L1, z=0)"),
                     n_states=4, n_per_state=256, n_prior=256, n_hole=4096),
        "standard": dict(n_demos=4096, steps=1500, width=128, depth=3, batch_size=256, lr=1e-3, latent_dim=2,
                         variants=("weak KL", "learned prior", "MMD (WAE)", "ACT (L1, z=0)"),
                         n_states=8, n_per_state=256, n_prior=512, n_hole=4096),
        "full": dict(n_demos=16384, steps=3000, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     variants=("weak KL", "learned prior", "MMD (WAE)", "Sinkhorn (WAE)", "ACT (L1, z=0)"),
                     n_states=16, n_per_state=512, n_prior=1024, n_hole=8192),
    },
    # chapter 5: a flow and a diffusion policy on the 1-D fork (H = d = 1), their maps measured
    # on an n_grid-point base grid
    "transport": {
        "fast": dict(n_demos=2048, steps=500, width=64, depth=2, batch_size=256, lr=1e-2, n_grid=2001),
        "standard": dict(n_demos=8192, steps=3000, width=128, depth=3, batch_size=256, lr=3e-3, n_grid=20001),
        "full": dict(n_demos=16384, steps=4000, width=256, depth=3, batch_size=512, lr=1e-3, n_grid=100001),
    },
    # chapter 6: flow/diffusion policies on the K-branch fork (H = 8); each model is sampled with every
    # count in sampler_steps and measured at n_obs observations: n_samples samples, n_segments base
    # segments of n_points points, Jacobian power iteration at n_jac random (+ n_jac bridge) base points
    "bridges": {
        "fast": dict(n_demos=2048, steps=500, width=64, depth=2, batch_size=256, lr=1e-2, sampler_steps=(1, 2, 4, 8, 16),
                     n_obs=1, n_samples=512, n_segments=24, n_points=129, n_jac=32),
        "standard": dict(n_demos=8192, steps=3000, width=128, depth=3, batch_size=256, lr=3e-3,
                         sampler_steps=(1, 2, 4, 8, 16, 32), n_obs=2, n_samples=4096, n_segments=64, n_points=257,
                         n_jac=128),
        "full": dict(n_demos=16384, steps=4000, width=256, depth=3, batch_size=512, lr=1e-3,
                     sampler_steps=(1, 2, 4, 8, 16, 32, 64), n_obs=8, n_samples=4096, n_segments=256, n_points=513,
                     n_jac=512),
    },
    # chapter 7: every family in `families` trained on every (task, K, Δc) of `settings` (σ = 0.1, H = 8);
    # one cvae per β = ratio·β* in beta_ratios, each diffusion/flow sampled with every count in sampler_steps
    # (their L̂ measured by chapter 6's measure.measure_bridges with BUDGETS["bridges"][lipschitz_sizes]); measured at
    # n_obs observations with n_samples samples,
    # n_sinkhorn of them against as many demonstrations for the Sinkhorn divergence
    "synthetic": {
        "fast": dict(n_demos=1024, steps=250, width=64, depth=2, batch_size=256, lr=5e-3, latent_dim=2,
                     settings=(("fork", 2, 3.0), ("fork", 3, 3.0)),
                     families=("regression", "cvae", "vq", "mixture", "diffusion", "flow", "autoregressive"),
                     beta_ratios=(0.1, 2.0), sampler_steps=(1, 4, 16), n_obs=1, n_samples=512, n_sinkhorn=128,
                     lipschitz_sizes="fast"),
        "standard": dict(n_demos=2048, steps=400, width=64, depth=2, batch_size=256, lr=5e-3, latent_dim=2,
                         settings=(("fork", 2, 3.0), ("fork", 3, 3.0), ("fork", 4, 3.0), ("fork", 2, 1.5),
                                   ("ring", 4, 3.0), ("branching", 3, 3.0)),
                         families=("regression", "cvae", "vq", "mixture", "diffusion", "flow", "autoregressive"),
                         beta_ratios=(0.1, 0.5, 2.0), sampler_steps=(1, 4, 16), n_obs=2, n_samples=512,
                         n_sinkhorn=192, lipschitz_sizes="fast"),
        "full": dict(n_demos=16384, steps=1500, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     settings=(("fork", 2, 3.0), ("fork", 3, 3.0), ("fork", 4, 3.0), ("fork", 6, 3.0), ("fork", 2, 1.5),
                               ("fork", 2, 6.0), ("ring", 3, 3.0), ("ring", 4, 3.0), ("ring", 6, 3.0),
                               ("branching", 3, 3.0), ("branching", 4, 3.0)),
                     families=("regression", "cvae", "vq", "mixture", "diffusion", "flow", "autoregressive"),
                     beta_ratios=(0.05, 0.1, 0.25, 0.5, 0.8, 1.25, 2.0, 4.0), sampler_steps=(1, 2, 4, 8, 16, 32, 64),
                     n_obs=4, n_samples=4096, n_sinkhorn=256, lipschitz_sizes="standard"),
    },
    # chapter 8: every policy variant of mbc_lib.experiments.robot.POLICIES in `policies`, trained on n_demos
    # expert episodes of each task in `envs` with K in Ks (chunks of chunk_len), each rolled out for n_eval
    # episodes with every executor setting in `executors` (labels of robot.EXECUTORS), every failure attributed
    "robot": {
        "fast": dict(envs=("PathGaps", "PushDivider"), Ks=(2,), n_demos=64, chunk_len=8, steps=300, width=64, depth=2,
                     batch_size=256, lr=3e-3, n_eval=32,
                     policies=("regression", "cvae", "cvae β=10", "vq", "mixture", "diffusion", "flow",
                               "autoregressive"),
                     executors=("whole chunk", "ensemble m=0.01")),
        "standard": dict(envs=("PathGaps", "PushDivider"), Ks=(2,), n_demos=128, chunk_len=8, steps=800, width=128,
                         depth=3, batch_size=256, lr=1e-3, n_eval=64,
                         policies=("regression", "cvae", "cvae β=10", "vq", "mixture", "diffusion", "flow",
                                   "autoregressive"),
                         executors=("whole chunk", "ensemble m=0.01")),  # half chunks: in BUDGETS["failures"]
        "full": dict(envs=("PathGaps", "PushDivider", "PushBins"), Ks=(2, 3), n_demos=512, chunk_len=8, steps=2000,
                     width=256, depth=3, batch_size=512, lr=1e-3, n_eval=128,
                     policies=("regression", "cvae", "cvae β=10", "vq", "mixture", "diffusion", "flow",
                               "autoregressive"),
                     executors=("whole chunk", "half chunk", "every step", "ensemble m=0.01", "ensemble m=0.5")),
    },
    # chapter 9: expert demos of both robot tasks (n_episodes each), modes clustered (single linkage cut at
    # `threshold` m/s) in the k-nearest neighbourhoods of n_query observations at each episode time step of
    # `time_steps`, at every chunk length in Hs; then a cvae per β = ratio·β*(s₀) and a flow trained on the gap
    # task (chunk_len), each trained for `steps` optimiser steps, measured with n_samples samples / n_hole prior draws /
    # n_jac Jacobians per start observation and rolled out for n_eval episodes
    "robot_modes": {
        "fast": dict(n_episodes=48, chunk_len=8, Hs=(4, 8, 16), time_steps=(0, 2, 8, 16, 32), n_query=3, k=32,
                     threshold=0.3, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2,
                     beta_ratios=(0.1, 3.0), n_samples=256, n_hole=2048, n_jac=8, n_eval=16),
        "standard": dict(n_episodes=128, chunk_len=8, Hs=(2, 4, 8, 16), time_steps=(0, 1, 2, 4, 8, 16, 24, 32, 40),
                         n_query=6, k=48, threshold=0.3, steps=1500, width=128, depth=3, batch_size=256,
                         lr=1e-3, latent_dim=2, beta_ratios=(0.1, 3.0), n_samples=512, n_hole=4096, n_jac=32,
                         n_eval=64),
        "full": dict(n_episodes=512, chunk_len=8, Hs=(1, 2, 4, 8, 16, 32), time_steps=tuple(range(0, 44, 2)),
                     n_query=16, k=64, threshold=0.3, steps=2000, width=256, depth=3, batch_size=512,
                     lr=1e-3, latent_dim=2, beta_ratios=(0.03, 0.1, 0.3, 1.0, 3.0), n_samples=2048, n_hole=8192,
                     n_jac=128, n_eval=128),
    },
    # chapter 10, prior surgery: a cvae at β = ratio·β* on the fork (each K of fork_Ks) and on PathGaps (each K
    # of robot_Ks, n_episodes noisy expert episodes); each mode's latent region is the `coverage` ellipse of n_post
    # posterior draws per demonstration (n_states × n_per_state on the fork, the first chunk of every episode on
    # the robot); every deployment prior decoded n_prior times per state (rejection sampling), its kept prior mass
    # from n_mass draws, and rolled out for n_eval episodes; hole-free set q̄/p ≥ alpha from n_pool posteriors
    "prior_surgery": {
        "fast": dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2, ratio=0.1,
                     fork_Ks=(2, 3), robot_Ks=(2,), n_states=4, n_per_state=256, n_post=8, n_pool=1024, n_prior=256,
                     n_mass=20000, coverage=0.95, alpha=0.5, n_episodes=48, n_eval=32, n_plot=48, n_map=61,
                     map_lim=3.0),
        "standard": dict(n_demos=4096, steps=1500, width=128, depth=3, batch_size=256, lr=1e-3, latent_dim=2,
                         ratio=0.1, fork_Ks=(2, 3), robot_Ks=(2, 3), n_states=8, n_per_state=256, n_post=8,
                         n_pool=2048, n_prior=512, n_mass=50000, coverage=0.95, alpha=0.5, n_episodes=128,
                         n_eval=64, n_plot=64, n_map=81, map_lim=3.0),
        "full": dict(n_demos=16384, steps=3000, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     ratio=0.1, fork_Ks=(2, 3, 4), robot_Ks=(2, 3), n_states=16, n_per_state=512, n_post=16,
                     n_pool=4096, n_prior=1024, n_mass=200000, coverage=0.95, alpha=0.5, n_episodes=512,
                     n_eval=128, n_plot=64, n_map=101, map_lim=3.0),
    },
    # chapter 10, the trade-off: one cvae per β = ratio·β* on the fork (K = 2) and on PathGaps (K = 2), each grid
    # one stacked model; measured at n_states × n_per_state fork demonstrations / the first chunk of n_episodes
    # episodes: KL split, P̂_e, TV and Hole_alpha from n_hole prior draws, n_prior decoded prior samples per
    # state; n_eval closed-loop episodes per robot model
    "tradeoff": {
        "fast": dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2,
                     ratios=(1 / 30, 0.1, 1.0, 3.0), n_states=4, n_per_state=256, n_prior=256, n_hole=2048,
                     alpha=0.5, n_episodes=48, n_eval=16),
        "standard": dict(n_demos=4096, steps=1500, width=128, depth=3, batch_size=256, lr=1e-3, latent_dim=2,
                         ratios=(1 / 30, 0.1, 0.3, 0.6, 1.0, 3.0), n_states=8, n_per_state=256, n_prior=512,
                         n_hole=4096, alpha=0.5, n_episodes=128, n_eval=32),
        "full": dict(n_demos=16384, steps=3000, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     ratios=(1 / 30, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0), n_states=16,
                     n_per_state=512, n_prior=1024, n_hole=8192, alpha=0.5, n_episodes=512, n_eval=128),
    },
    # chapter 10, separation: the two-branch fork (σ = 0.1, H = 8) with its mode regions `gaps`·σ apart; a cvae
    # per (gap, β = ratio·β*) of collapse_ratios (one stacked model) gives the collapse point, the one at
    # cvae_ratio stands for the family; every family in `families` trained per gap and sampled n_samples
    # times at n_obs observations; L̂ from n_jac Jacobians; the regime diagnostic on n_diag demonstrations
    "separation": {
        "fast": dict(n_demos=1024, steps=200, width=64, depth=2, batch_size=256, lr=5e-3, latent_dim=2,
                     gaps=(-6.0, 1.0, 10.0), collapse_ratios=(0.1, 0.3, 1.0), cvae_ratio=0.1,
                     families=("regression", "cvae", "mixture", "flow"), n_obs=1, n_samples=512, n_kl=256,
                     n_diag=256, n_jac=16, n_plot=48),
        "standard": dict(n_demos=2048, steps=400, width=64, depth=2, batch_size=256, lr=5e-3, latent_dim=2,
                         gaps=(-8.0, -3.0, 1.0, 3.0, 6.0, 10.0), collapse_ratios=(0.03, 0.1, 0.3, 0.6, 1.0),
                         cvae_ratio=0.1, families=("regression", "cvae", "vq", "mixture", "diffusion", "flow"),
                         n_obs=2, n_samples=1024, n_kl=256, n_diag=512, n_jac=32, n_plot=64),
        "full": dict(n_demos=16384, steps=1500, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     gaps=(-9.0, -6.0, -4.0, -2.0, -1.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0),
                     collapse_ratios=(0.03, 0.06, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 2.0), cvae_ratio=0.1,
                     families=("regression", "cvae", "vq", "mixture", "diffusion", "flow", "autoregressive"),
                     n_obs=4, n_samples=4096, n_kl=512, n_diag=1024, n_jac=128, n_plot=64),
    },
    # chapter 10, unequal modes: every family in `families` trained on the K = 3 fork with weights 0.6/0.3/0.1
    # and sampled n_samples times at n_obs observations; the cvae (β = cvae_ratio·β*) also measured at
    # n_states × n_per_state demonstrations (latent shares from n_mass prior draws, ellipses of n_post draws)
    "unequal": {
        "fast": dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2,
                     cvae_ratio=0.1, families=("regression", "cvae", "vq", "mixture", "diffusion", "flow"), n_obs=2,
                     n_samples=1024, n_states=4, n_per_state=512, n_post=8, n_mass=8192, coverage=0.95, n_plot=48),
        "standard": dict(n_demos=4096, steps=1000, width=128, depth=3, batch_size=256, lr=1e-3, latent_dim=2,
                         cvae_ratio=0.1, families=("regression", "cvae", "vq", "mixture", "diffusion", "flow",
                                                   "autoregressive"), n_obs=4, n_samples=2048, n_states=8,
                         n_per_state=512, n_post=8, n_mass=16384, coverage=0.95, n_plot=64),
        "full": dict(n_demos=16384, steps=3000, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     cvae_ratio=0.1, families=("regression", "cvae", "vq", "mixture", "diffusion", "flow",
                                               "autoregressive"), n_obs=8, n_samples=4096, n_states=16,
                     n_per_state=512, n_post=16, n_mass=65536, coverage=0.95, n_plot=64),
    },
    # chapters 8-9, failure attribution and switching: on each task of `envs` (K modes), every variant of
    # mbc_lib.experiments.failures.POLICIES in `policies` trained on n_demos expert episodes with chunks of
    # chunk_len, those in `switch_policies` also at every H of Hs; each rolled out for n_eval recorded episodes
    # with every executor in `executors` (a ", coherent" one keeps, of 8 chunks drawn per query, the one that best
    # continues the previous chunk), free and (families that can) committed once per episode
    "failures": {
        "fast": dict(envs=("PathGaps", "PushDivider"), K=2, n_demos=64, chunk_len=8, Hs=(4, 8, 16), steps=300,
                     width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2, n_eval=16,
                     policies=("cvae",), switch_policies=("cvae",),
                     executors=("whole chunk", "ensemble m=0.01", "whole chunk, coherent")),
        "standard": dict(envs=("PathGaps", "PushDivider"), K=2, n_demos=128, chunk_len=8, Hs=(4, 8, 16), steps=800,
                         width=128, depth=3, batch_size=256, lr=1e-3, latent_dim=2, n_eval=32,
                         policies=("cvae",), switch_policies=("cvae",),
                         executors=("whole chunk", "half chunk", "ensemble m=0.01", "whole chunk, coherent")),
        "full": dict(envs=("PathGaps", "PushDivider", "PushBins"), K=2, n_demos=512, chunk_len=8, Hs=(4, 8, 16),
                     steps=2000, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2, n_eval=128,
                     policies=("regression", "cvae", "cvae β=10", "vq", "mixture", "diffusion", "flow"),
                     switch_policies=("cvae", "vq", "mixture", "diffusion", "flow"),
                     executors=("whole chunk", "half chunk", "ensemble m=0.01", "whole chunk, coherent",
                                "half chunk, coherent")),
    },
    # stochastic samplers: one diffusion policy per setting (fork K = 2, 3; ring K = 4; Δc = 3, σ = 0.1, H = 8),
    # sampled with every η of `etas` at every count of sampler_steps; measured at n_obs observations with n_samples
    # draws of all the noise, Jacobians at n_jac random (+ n_jac bridge) points, n_segments segments of n_points
    "stochastic_samplers": {
        "fast": dict(n_demos=1024, steps=400, width=64, depth=2, batch_size=256, lr=1e-2, sampler_steps=(4, 16),
                     etas=(0.0, 0.5, 1.0), n_obs=1, n_samples=512, n_jac=8, n_segments=8, n_points=33),
        "standard": dict(n_demos=8192, steps=3000, width=128, depth=3, batch_size=256, lr=3e-3,
                         sampler_steps=(4, 16), etas=(0.0, 0.5, 1.0), n_obs=2, n_samples=4096, n_jac=64,
                         n_segments=48, n_points=129),
        "full": dict(n_demos=16384, steps=4000, width=256, depth=3, batch_size=512, lr=1e-3,
                     sampler_steps=(2, 4, 8, 16, 32), etas=(0.0, 0.25, 0.5, 0.75, 1.0), n_obs=8, n_samples=8192,
                     n_jac=128, n_segments=128, n_points=257),
    },
    # state-adaptive β: on branching (n_demos) and PathGaps (n_episodes), β*(s) from the clustered k-neighbourhoods
    # of n_query states (branching: a grid; PathGaps: every `stride` steps of n_query_episodes demos); a cvae per
    # constant β = r·β*_ref (r in ratios, one stacked model) and per adaptive rule × fraction c; measured at
    # per_segment states per K (branching) or the query states (n_per_state demos, n_prior prior draws), n_eval rollouts
    "adaptive_beta": {
        "fast": dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2,
                     ratios=(0.03, 0.3), fractions=(0.1,), n_query=8, k=48, per_segment=2, n_per_state=128,
                     n_prior=256, n_episodes=32, n_query_episodes=2, stride=16, n_eval=16),
        "standard": dict(n_demos=4096, steps=1500, width=64, depth=2, batch_size=256, lr=2e-3, latent_dim=2,
                         ratios=(0.01, 0.03, 0.1, 0.3, 1.0), fractions=(0.01, 0.03, 0.1, 0.3), n_query=24, k=64,
                         per_segment=4, n_per_state=256, n_prior=512, n_episodes=128, n_query_episodes=4, stride=4,
                         n_eval=64),
        "full": dict(n_demos=16384, steps=3000, width=256, depth=3, batch_size=512, lr=1e-3, latent_dim=2,
                     ratios=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0), fractions=(0.003, 0.01, 0.03, 0.1, 0.3), n_query=48,
                     k=128, per_segment=8, n_per_state=512, n_prior=1024, n_episodes=512, n_query_episodes=8,
                     stride=2, n_eval=128),
    },
}


#: What the ``full`` profile costs per chapter, as measured on this project's machines (an H200 lent in
#: session 3; a 2-core CPU in sessions 3–4) or estimated from measured per-step times where a chapter
#: has not run to the end. `make full-gpu` remeasures it on a GPU.
FULL_PROFILE_COST: dict[int, str] = {
    1: "about 3 min on a GPU (estimated); 10–14 min on 2 CPU cores (measured)",
    2: "under a minute on a GPU (23 s measured on an H200) or a CPU",
    3: "about 2–3 min on a GPU (2.3 min measured on an H200, sharing it)",
    4: "about 7 min on a GPU (estimated); 38 min on 2 CPU cores (measured)",
    5: "a few minutes on a GPU (estimated); 10–14 min on 2 CPU cores (measured)",
    6: "3–4 min on a GPU (estimated); hours on a CPU",
    7: "about 12 min on a GPU before the autoregressive token head joined it, and more now: on a CPU the token head "
       "trains 5–8 times slower per step than a CVAE (measured on the robot tasks); hours on a CPU",
    8: "7–8 min on a GPU before the third task, the token head and the failure attribution joined it, and more now "
       "(estimated); 35 min on 2 CPU cores were measured before them, over an hour now (estimated)",
    9: "2–3 min on a GPU (estimated); 10–14 min on 2 CPU cores (measured)",
    10: "not yet measured on a GPU; hours on 2 CPU cores (estimated from its standard profile, which took about "
        "half an hour there)",
    11: "the time of chapters 4 and 7–10 at full unless their tables are cached (it reads them back)",
    12: "not yet measured; estimated 5–10 min on a GPU (3 diffusion policies, 17 cvaes and their robot rollouts); "
        "hours on a CPU",
}


def full_profile_note(chapter: int) -> str:
    """One sentence for a chapter's first cell: how to opt into ``full`` and what it costs there."""
    cost = FULL_PROFILE_COST.get(chapter, "not yet measured; sized for a GPU")
    return (f"To run this chapter at the `full` profile, set `MBC_PROFILE=full` before importing mbc_lib "
            f"(restart the kernel first): {cost}.")


def profile() -> str:
    """The active profile: ``$MBC_PROFILE`` if set, else ``standard`` — on every device.

    ``full`` becomes a device's default only once every chapter has run end to end at ``full`` on
    that device (chapters 6, 7 and 10 have not yet on any GPU); until then a reader opts in."""
    name = os.environ.get("MBC_PROFILE", "").strip().lower()
    if not name:
        return "standard"
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile MBC_PROFILE={name!r}; expected one of {', '.join(PROFILES)} "
            "(unset it to get the default, standard)"
        )
    return name


def budget(experiment: str, profile_name: str | None = None) -> dict[str, Any]:
    """Sizes for ``experiment`` under ``profile_name`` (default: the active profile)."""
    if experiment not in BUDGETS:
        raise ValueError(f"no budget for experiment {experiment!r}; known: {', '.join(sorted(BUDGETS))}")
    name = profile() if profile_name is None else profile_name
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    return dict(BUDGETS[experiment][name])


#: how many training seeds a profile's seeded grids use (mbc_lib.experiments.grid): the headline numbers of
#: chapters 7 and 8 are reported as the mean and min–max over these seeds
SEED_COUNTS: dict[str, int] = {"fast": 1, "standard": 3, "full": 5}


def training_seeds(profile_name: str | None = None, first: int = 0) -> tuple[int, ...]:
    """The training seeds of ``profile_name`` (default: the active profile): ``first``, ``first + 1``, …"""
    name = profile() if profile_name is None else profile_name
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise ValueError(f"first (the first training seed) must be an integer >= 0, got {first!r}")
    return tuple(range(first, first + SEED_COUNTS[name]))
