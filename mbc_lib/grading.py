"""Checks that the exercise notebooks call.

Each ``check_*`` function runs the student's function on several cases (edge cases
included), compares with reference behaviour and returns a :class:`CheckResult` that
displays as a short report: which case failed, expected versus got, and a hint. The check
itself never raises for a wrong or unfinished answer (an unfinished exercise reports
"not implemented yet") and never shows the reference code; the exercise's check cell then
asserts the result, so nbgrader's autograder scores it (book/instructors.md).
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["CheckResult", "Case", "run_cases", "check_l2_loss", "check_l1_loss", "check_optimal_constant",
           "check_ensemble_weights", "check_queue_execution", "check_ensemble_execution",
           "check_flow_matching_loss", "check_euler_sampler",
           "check_gaussian_kl", "check_cvae_loss", "check_fano_bound",
           "check_critical_beta_equal", "check_beta_hard", "check_fork_beta_star", "check_collapse_prediction",
           "check_log_prior_density", "check_chi2_percentile", "check_hole_mass"]


@dataclass
class Case:
    """One call of the student's function: ``args``, the ``expected`` value, and what it tests."""

    label: str
    args: tuple
    expected: Any
    kwargs: dict = field(default_factory=dict)


@dataclass
class CheckResult:
    """The outcome of one exercise check."""

    name: str
    passed: bool
    n_cases: int
    messages: list[str] = field(default_factory=list)
    not_implemented: bool = False

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.name}: all {self.n_cases} cases pass."
        head = f"✗ {self.name}: " + ("not implemented yet." if self.not_implemented else "some cases fail.")
        return "\n".join([head, *("  - " + m for m in self.messages)])

    def _repr_html_(self) -> str:
        color = "#2ca02c" if self.passed else "#d62728"
        body = "<br>".join(html.escape(line) for line in str(self).splitlines())
        return f'<div style="border-left:4px solid {color};padding:0.3em 0.8em">{body}</div>'

    __repr__ = __str__


def _close(got: Any, expected: Any, atol: float, rtol: float) -> tuple[bool, str]:
    """Compare nested tensors/numbers/sequences; return (ok, reason)."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            try:
                got = torch.as_tensor(got, dtype=expected.dtype)
            except Exception:
                return False, f"expected a tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return False, f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if not torch.allclose(got.detach().double(), expected.double(), atol=atol, rtol=rtol):
            return False, f"expected {_short(expected)}, got {_short(got)}"
        return True, ""
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple, torch.Tensor)) or len(got) != len(expected):
            return False, f"expected {len(expected)} values, got {got!r}"
        for i, (g, e) in enumerate(zip(got, expected)):
            ok, why = _close(g, e, atol, rtol)
            if not ok:
                return False, f"item {i}: {why}"
        return True, ""
    if isinstance(got, (str, bytes)):  # float("0.42") would convert: the text of a number is not a number
        return False, f"expected a number, got the text {got!r} (a str); return the value itself, not str(value)"
    numel = getattr(got, "numel", None) or (lambda: getattr(got, "size", 1))
    if hasattr(got, "shape") and numel() != 1:
        return False, (f"expected a single number (a scalar), got a {type(got).__name__} of shape {tuple(got.shape)}; "
                       "reduce it to one value (e.g. with .mean() over every element)")
    try:
        g = float(got)
    except Exception:
        return False, f"expected a number, got {type(got).__name__}"
    if math.isfinite(expected) and not math.isclose(g, expected, abs_tol=atol, rel_tol=rtol):
        return False, f"expected {expected:.6g}, got {g:.6g}"
    if not math.isfinite(expected) and not (g == expected or (math.isnan(g) and math.isnan(expected))):
        return False, f"expected {expected}, got {g:.6g}"
    return True, ""


def _short(t: torch.Tensor) -> str:
    flat = t.detach().flatten()
    vals = ", ".join(f"{v:.4g}" for v in flat[:6].tolist())
    return f"[{vals}{', …' if flat.numel() > 6 else ''}]"


def run_cases(name: str, fn: Callable, cases: Sequence[Case], hint: str = "", atol: float = 1e-5,
              rtol: float = 1e-4) -> CheckResult:
    """Call ``fn`` on every case and report."""
    messages = []
    for case in cases:
        try:
            got = fn(*case.args, **case.kwargs)
        except NotImplementedError:
            return CheckResult(name, False, len(cases), [
                "replace the `raise NotImplementedError(...)` line with your implementation, then re-run this cell."
            ], not_implemented=True)
        except Exception as err:  # a student's bug: report it, don't crash the notebook
            messages.append(f"{case.label}: raised {type(err).__name__}: {err}")
            continue
        ok, why = _close(got, case.expected, atol, rtol)
        if not ok:
            messages.append(f"{case.label}: {why}")
    if messages and hint:
        messages.append(f"hint: {hint}")
    return CheckResult(name, not messages, len(cases), messages)


# -- exercise 1.1: regression and the averaging of modes -----------------------------------------------

def _regression_cases(kind: str) -> list[Case]:
    g = torch.Generator().manual_seed(1)
    cases = []
    for shape in [(4, 3), (2, 5, 1), (1, 1)]:
        pred, target = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        err = pred - target
        ref = err.pow(2).mean() if kind == "l2" else err.abs().mean()
        cases.append(Case(f"pred/target of shape {shape}", (pred, target), float(ref)))
    zero = torch.zeros(3, 2)
    cases.append(Case("identical pred and target", (zero, zero), 0.0))
    return cases


def check_l2_loss(fn: Callable) -> CheckResult:
    """``fn(pred, target)`` = mean over all elements of (pred − target)²."""
    return run_cases("Exercise 1.1a (L2 loss)", fn, _regression_cases("l2"),
                     hint="average the squared error over every element, not the sum and not the root")


def check_l1_loss(fn: Callable) -> CheckResult:
    """``fn(pred, target)`` = mean over all elements of |pred − target|."""
    return run_cases("Exercise 1.1a (L1 loss)", fn, _regression_cases("l1"),
                     hint="average the absolute error over every element")


def check_optimal_constant(fn: Callable) -> CheckResult:
    """``fn(samples [N], loss)`` = the constant minimising the mean loss: mean (l2) or median (l1)."""
    g = torch.Generator().manual_seed(2)
    bimodal = torch.cat([torch.randn(51, generator=g) * 0.1 - 1, torch.randn(50, generator=g) * 0.1 + 1])
    skewed = torch.cat([torch.zeros(70), torch.ones(31) * 5])
    cases = []
    for name, x in [("a symmetric two-mode sample", bimodal), ("a skewed sample", skewed), ("one sample", torch.tensor([3.0]))]:
        cases.append(Case(f"l2 on {name}", (x, "l2"), float(x.mean())))
        cases.append(Case(f"l1 on {name}", (x, "l1"), float(x.median())))
    return run_cases("Exercise 1.1b (optimal constant prediction)", fn, cases,
                     hint="for l2 the minimiser is the mean; for l1 it is a median (odd-sized samples: the middle value)")


# -- exercise 2.1: chunk execution ------------------------------------------------------------------------

def check_ensemble_weights(fn: Callable) -> CheckResult:
    """``fn(n, m)`` = ACT's weights exp(−m·i), i = 0 oldest, normalised, as a tensor [n]."""
    from .control import ensemble_weights

    cases = [Case(f"n={n}, m={m}", (n, m), ensemble_weights(n, m)) for n, m in [(1, 0.01), (4, 0.0), (4, 0.5), (6, 2.0)]]
    return run_cases("Exercise 2.1a (temporal-ensembling weights)", fn, cases,
                     hint="index 0 is the OLDEST prediction and gets the largest weight; the weights sum to 1")


def _chunk_at(H: int):
    """A toy policy: the chunk queried at step q is (100·q + 0, 100·q + 1, …)."""
    return lambda q: 100.0 * q + torch.arange(H, dtype=torch.float32)


def _run_executor(H: int, T: int, n_action_steps: int | None = None, m: float | None = None) -> list[float]:
    from .control import ChunkExecutor

    ex = ChunkExecutor(H, n_action_steps=n_action_steps, temporal_ensemble=m)
    chunk_at = _chunk_at(H)
    out = []
    for t in range(T):
        out.append(float(ex.act(torch.zeros(1, 1), lambda obs, t=t: chunk_at(t).reshape(1, H, 1))[0, 0]))
    return out


def check_queue_execution(fn: Callable) -> CheckResult:
    """``fn(chunk_at, H, n_action_steps, T)`` = the T executed actions of an action queue, where
    ``chunk_at(t)`` is the chunk the policy returns when queried at step t."""
    cases = [Case(f"H={H}, n_action_steps={n}, T={T}", (_chunk_at(H), H, n, T), _run_executor(H, T, n_action_steps=n))
             for H, n, T in [(3, 3, 7), (4, 1, 5), (4, 2, 9), (1, 1, 3)]]
    return run_cases("Exercise 2.1b (action queue)", fn, cases,
                     hint="query only when the queue is empty, at the current step t, and execute the first n_action_steps actions")


def check_ensemble_execution(fn: Callable) -> CheckResult:
    """``fn(chunk_at, H, m, T)`` = the T executed actions of temporal ensembling (query every step)."""
    cases = [Case(f"H={H}, m={m}, T={T}", (_chunk_at(H), H, m, T), _run_executor(H, T, m=m))
             for H, m, T in [(3, 0.0, 6), (4, 0.5, 7), (2, 5.0, 4), (1, 0.1, 3)]]
    return run_cases("Exercise 2.1c (temporal ensembling)", fn, cases,
                     hint="at step t, the chunk queried at step q ≤ t predicts its element t − q; use only chunks with t − q < H")


# -- exercise 5.1: flow matching ---------------------------------------------------------------------------

def _toy_velocity():
    """A fixed, non-trivial velocity field v(x, t) = sin(x)·(1 + t) − 0.5·x."""
    return lambda x, t: torch.sin(x) * (1 + t.reshape(-1, *([1] * (x.ndim - 1)))) - 0.5 * x


def check_flow_matching_loss(fn: Callable) -> CheckResult:
    """``fn(v, x0, x1, t)``: x_t = (1 − t)·x0 + t·x1, target velocity x1 − x0, mean squared error."""
    g = torch.Generator().manual_seed(5)
    v = _toy_velocity()
    cases = []
    for B, d in [(8, 2), (3, 1), (1, 4)]:
        x0, x1, t = torch.randn(B, d, generator=g), torch.randn(B, d, generator=g), torch.rand(B, generator=g)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        ref = (v(xt, t) - (x1 - x0)).pow(2).mean()
        cases.append(Case(f"batch {B}×{d}", (v, x0, x1, t), float(ref)))
    return run_cases("Exercise 5.1a (flow-matching loss)", fn, cases,
                     hint="noise x0 at t = 0, data x1 at t = 1; the straight path's velocity is x1 − x0")


def check_euler_sampler(fn: Callable) -> CheckResult:
    """``fn(v, x0, steps)``: integrate dx/dt = v(x, t) from t = 0 to 1 with ``steps`` Euler steps."""
    g = torch.Generator().manual_seed(6)
    v = _toy_velocity()

    def ref(x, steps):
        for k in range(steps):
            t = torch.full((x.shape[0],), k / steps)
            x = x + v(x, t) / steps
        return x

    cases = []
    for B, d, steps in [(5, 2, 1), (5, 2, 4), (3, 1, 10)]:
        x0 = torch.randn(B, d, generator=g)
        cases.append(Case(f"{steps} steps, batch {B}×{d}", (v, x0, steps), ref(x0, steps)))
    linear = lambda x, t: torch.ones_like(x)  # noqa: E731  (exact for Euler: x1 = x0 + 1)
    cases.append(Case("constant velocity 1", (linear, torch.zeros(2, 3), 7), torch.ones(2, 3)))
    return run_cases("Exercise 5.1b (Euler sampler)", fn, cases,
                     hint="start at t = 0, step size 1/steps, evaluate v at the START of each step, end at t = 1")


# -- exercise 3.1: the KL, the CVAE loss and the Fano bound -------------------------------------------------

def _kl_diag(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    return 0.5 * (torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1 + logvar_p - logvar_q).sum(-1)


def check_gaussian_kl(fn: Callable) -> CheckResult:
    """``fn(mu_q, logvar_q, mu_p, logvar_p)`` = KL(N(μ_q, diag e^logvar_q) ‖ N(μ_p, diag e^logvar_p)) per row,
    summed over the latent dimensions: ``[B]`` in nats."""
    g = torch.Generator().manual_seed(31)
    cases = []
    for B, dz, prior in [(4, 3, "standard normal"), (5, 2, "learned"), (2, 1, "learned")]:
        mq, lq = torch.randn(B, dz, generator=g), 0.8 * torch.randn(B, dz, generator=g)
        if prior == "standard normal":
            mp, lp = torch.zeros(B, dz), torch.zeros(B, dz)
        else:
            mp, lp = torch.randn(B, dz, generator=g), 0.8 * torch.randn(B, dz, generator=g)
        cases.append(Case(f"{prior} prior, B={B}, dz={dz}", (mq, lq, mp, lp), _kl_diag(mq, lq, mp, lp)))
    same = torch.randn(3, 4, generator=g)
    cases.append(Case("q equal to p", (same, same, same, same), torch.zeros(3)))
    cases.append(Case("N(1, 1) against N(0, 1)", (torch.ones(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1)),
                      torch.tensor([0.5])))
    return run_cases("Exercise 3.1a (KL between diagonal Gaussians)", fn, cases,
                     hint="KL(q‖p) = ½ Σ_j [σ_q²/σ_p² + (μ_q − μ_p)²/σ_p² − 1 + log σ_p² − log σ_q²], with σ² = exp(logvar); "
                          "sum over latent dims, one number per row, and mind which distribution is q")


def check_cvae_loss(fn: Callable) -> CheckResult:
    """``fn(chunk, recon, mu, logvar, beta)`` = mean over all chunk elements of (recon − chunk)² plus
    β · (batch mean of the KL to N(0, I), summed over latent dims) — the cvae policy's (and ACT's) scaling."""
    g = torch.Generator().manual_seed(32)
    cases = []
    for B, H, d, dz, beta in [(4, 8, 1, 2, 0.1), (3, 5, 2, 4, 10.0), (2, 3, 1, 3, 0.0)]:
        chunk, recon = torch.randn(B, H, d, generator=g), torch.randn(B, H, d, generator=g)
        mu, logvar = torch.randn(B, dz, generator=g), 0.5 * torch.randn(B, dz, generator=g)
        ref = (recon - chunk).pow(2).mean() + beta * _kl_diag(mu, logvar, torch.zeros_like(mu), torch.zeros_like(mu)).mean()
        label = "β = 0: only the reconstruction term" if beta == 0 else f"B={B}, H={H}, d={d}, dz={dz}, β={beta:g}"
        cases.append(Case(label, (chunk, recon, mu, logvar, beta), float(ref)))
    chunk = torch.randn(2, 4, 1, generator=g)
    mu, logvar = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    ref = 2.0 * _kl_diag(mu, logvar, torch.zeros_like(mu), torch.zeros_like(mu)).mean()
    cases.append(Case("perfect reconstruction: only β·KL (dz=3, β=2)", (chunk, chunk.clone(), mu, logvar, 2.0), float(ref)))
    return run_cases("Exercise 3.1b (the CVAE loss)", fn, cases,
                     hint="reconstruction: MEAN over batch, steps and action dims; KL: SUM over latent dims, then mean "
                          "over the batch; only the KL is multiplied by β")


def check_fano_bound(fn: Callable) -> CheckResult:
    """``fn(weights, p_e)`` = B(P_e) = 𝓗(π) − h(P_e) − P_e log(K − 1) in nats (natural logs), for ``weights`` a 1-D
    tensor and P_e the mode-identification error."""
    from . import theory

    cases = []
    for w, rho in [([0.5, 0.5], 0.0), ([0.5, 0.5], 0.1), ([0.25] * 4, 0.2), ([0.7, 0.2, 0.1], 0.05),
                   ([0.5, 0.5], 0.5), ([0.125] * 8, 0.0)]:
        cases.append(Case(f"π = {w}, P_e = {rho}", (torch.tensor(w), rho), theory.fano_bound(w, rho)))
    return run_cases("Exercise 3.1c (Fano bound)", fn, cases,
                     hint="natural logs; h(P_e) = −P_e log P_e − (1−P_e) log(1−P_e) with 0 log 0 = 0; "
                          "do not forget the P_e log(K − 1) term when K > 2")


# -- exercise 3.2: the critical β ------------------------------------------------------------------------

def check_critical_beta_equal(fn: Callable) -> CheckResult:
    """``fn(K, delta, sigma, sigma_d)`` = β* = (σ² + Δ_c²(K² − 1)/12)/σ_d² for K equal 1-D modes Δ_c apart (L2)."""
    from . import theory

    cases = [Case(f"K={K}, Δ_c={dl}, σ={s}, σ_d={sd}", (K, dl, s, sd), theory.critical_beta_equal_spacing(K, dl, s, sd))
             for K, dl, s, sd in [(2, 4.0, 1.0, 1.0), (3, 4.0, 1.0, 1.0), (2, 2.0, 0.5, 2.0), (5, 1.0, 0.1, 0.5),
                                  (1, 3.0, 0.3, 1.0)]]
    return run_cases("Exercise 3.2a (β* of the analytic toy)", fn, cases,
                     hint="β* = v′/σ_d² with v′ the variance of A along the line: within-mode σ² plus the variance of "
                          "K equally spaced points, Δ_c²(K² − 1)/12")


def check_beta_hard(fn: Callable) -> CheckResult:
    """``fn(centers, weights, sigma_d)`` = β_hard = V_B / (2σ_d² 𝓗(π)) for 1-D centres ``[K]`` and weights ``[K]``."""
    from . import theory

    cases = []
    for c, w, sd in [([-2.0, 2.0], [0.5, 0.5], 1.0), ([0.0, 4.0, 8.0], [1 / 3] * 3, 1.0), ([0.0, 4.0], [0.7, 0.3], 2.0),
                     ([0.0, 1.0, 3.0, 7.0], [0.1, 0.2, 0.3, 0.4], 0.5)]:
        cases.append(Case(f"centres {c}, π = {[round(x, 3) for x in w]}, σ_d = {sd}", (torch.tensor(c), torch.tensor(w), sd),
                          theory.beta_hard(c, w, 0.0, "l2", sd)))
    return run_cases("Exercise 3.2b (the naive hard-code estimate)", fn, cases,
                     hint="V_B = Σ_k π_k (μ_k − Σ_j π_j μ_j)²; the entropy 𝓗(π) in nats; the decoder scale is c = 2σ_d²")


def _fork_beta_star(delta_c: float, sigma: float, sigma_a: float, n: int) -> float:
    return 2 * ((sigma / sigma_a) ** 2 + (delta_c / sigma_a) ** 2 / 4) / n


def check_fork_beta_star(fn: Callable) -> CheckResult:
    """``fn(delta_c, sigma, sigma_a, n)`` = β* of an L2 CVAE with a mean-reduced loss over n elements of
    chunks normalised by σ_a, on the two-branch fork: 2(σ_n² + Δ_n²/4)/n with Δ_n = Δ_c/σ_a, σ_n = σ/σ_a."""
    cases = [Case(f"Δ_c={dc}, σ={s}, σ_a={sa}, n={n}", (dc, s, sa, n), _fork_beta_star(dc, s, sa, n))
             for dc, s, sa, n in [(2.0, 0.05, 0.679, 8), (2.0, 0.05, 1.0, 8), (4.0, 0.1, 1.2, 16), (1.0, 0.2, 0.5, 4)]]
    return run_cases("Exercise 3.2c (β* for the trained policy's loss scaling)", fn, cases,
                     hint="normalise first (divide Δ_c and σ by σ_a); the mean over n elements means c = n = 2σ_d²")


def check_collapse_prediction(fn: Callable, seed: int = 0, profile: str | None = None) -> CheckResult:
    """Train two L2 CVAEs on the fork at 0.5·β̂* and 1.5·β̂*, with β̂* = ``fn(Δ_c, σ, σ_a, n)`` from the
    student's formula and the data's normalisation; pass when the latent is alive below (E KL > 0.1 nats)
    and dead above (E KL < 0.02 nats) — i.e. when the prediction is right."""
    from . import tasks
    from .fitting import fit
    from .measure import evaluate_latent
    from .profiles import budget

    name = "Exercise 3.2d (your β* against a small sweep)"
    b = budget("latent", profile)
    task = tasks.make("fork", K=2, delta=2.0)  # chapter 3's fork
    data = task.dataset(b["n_demos"], seed=seed)
    sigma_a, n = float(data.normalizer().act_std[0]), task.chunk_len * task.action_dim
    try:
        beta_hat = float(fn(task.delta, task.sigma, sigma_a, n))
    except NotImplementedError:
        return CheckResult(name, False, 2, ["finish 4c first: replace its `raise NotImplementedError(...)` line."],
                           not_implemented=True)
    except Exception as err:
        return CheckResult(name, False, 2, [f"your function raised {type(err).__name__}: {err}"])
    if not (math.isfinite(beta_hat) and beta_hat > 0):
        return CheckResult(name, False, 2, [f"β̂* must be a positive number, got {beta_hat}"])
    messages, kls = [], {}
    for factor in (0.5, 1.5):
        pol, _ = fit("cvae", data, budget=b, seed=seed, progress=False, beta=factor * beta_hat, recon="l2")
        ev = evaluate_latent(pol, task, seed=seed, n_states=2, n_per_state=128, n_prior=16)
        kls[factor] = ev.split.mean_kl
    summary = f"β̂* = {beta_hat:.3f}: E KL = {kls[0.5]:.3f} nats at 0.5·β̂*, {kls[1.5]:.3f} nats at 1.5·β̂*"
    if kls[0.5] <= 0.1:
        messages.append("the latent is already dead at 0.5·β̂*: your β̂* is too large")
    if kls[1.5] >= 0.02:
        messages.append("the latent is still alive at 1.5·β̂*: your β̂* is too small")
    if messages:
        messages.append("hint: check 4c's normalisation and the factor 2/n")
    return CheckResult(f"{name} — {summary}", not messages, 2, messages)


# -- exercise 4.1: prior density at posterior means ------------------------------------------------------

def check_log_prior_density(fn: Callable) -> CheckResult:
    """``fn(z [N, d], mu_p [d], logvar_p [d])`` = log N(z; μ_p, diag e^logvar_p), summed over dims: ``[N]``."""
    g = torch.Generator().manual_seed(81)
    cases = []
    for N, d in [(5, 2), (3, 8), (1, 1)]:
        z, mp, lp = torch.randn(N, d, generator=g) * 2, torch.randn(d, generator=g), 0.7 * torch.randn(d, generator=g)
        ref = -0.5 * (((z - mp) ** 2) * torch.exp(-lp) + lp + math.log(2 * math.pi)).sum(-1)
        cases.append(Case(f"N={N}, d={d}", (z, mp, lp), ref))
    cases.append(Case("z = 0 under N(0, I_2)", (torch.zeros(1, 2), torch.zeros(2), torch.zeros(2)),
                      torch.tensor([-math.log(2 * math.pi)])))
    return run_cases("Exercise 4.1a (log prior density)", fn, cases,
                     hint="log N(z; μ, σ²) = −½ Σ_j [(z_j − μ_j)²/σ_j² + log σ_j² + log 2π], σ² = exp(logvar)")


def check_chi2_percentile(fn: Callable) -> CheckResult:
    """``fn(mu_q [N, d], mu_p [d], logvar_p [d])`` = F_{χ²_d}(‖(μ_q − μ_p)/σ_p‖²): the prior mass closer to
    the prior mean than each posterior mean, ``[N]``."""
    from scipy.stats import chi2

    g = torch.Generator().manual_seed(82)
    cases = []
    for N, d in [(6, 2), (4, 32), (3, 1)]:
        mq, mp, lp = torch.randn(N, d, generator=g) * 1.5, torch.randn(d, generator=g), 0.5 * torch.randn(d, generator=g)
        r2 = (((mq - mp) ** 2) * torch.exp(-lp)).sum(-1)
        cases.append(Case(f"N={N}, d={d}", (mq, mp, lp), torch.as_tensor(chi2.cdf(r2.numpy(), d), dtype=torch.float32)))
    cases.append(Case("the prior mean itself (z = 0 under N(0, I_4))", (torch.zeros(1, 4), torch.zeros(4), torch.zeros(4)),
                      torch.zeros(1)))
    return run_cases("Exercise 4.1b (χ² percentile of posterior means)", fn, cases, atol=1e-4,
                     hint="r² = Σ_j (μ_q,j − μ_p,j)²/σ_p,j² is χ² with d degrees of freedom under the prior; "
                          "return its CDF (scipy.stats.chi2.cdf), not the survival function, and square the radius")


def check_hole_mass(fn: Callable) -> CheckResult:
    """``fn(mu_q [N, d], logvar_q [N, d], eps, n_prior, generator)`` = the fraction of n_prior draws z ~ N(0, I)
    at which q̄(z)/p(z) < ε, with q̄ the uniform mixture of the N posteriors. Checked to ±0.02."""
    from scipy.stats import norm

    def gen(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    two = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    cases = [
        Case("q̄ equal to the prior", (torch.zeros(1, 3), torch.zeros(1, 3), 0.1, 20000, gen(1)), 0.0),
        Case("1-D, q̄ = N(3, 1), ε = 0.1", (torch.full((1, 1), 3.0), torch.zeros(1, 1), 0.1, 20000, gen(2)),
             float(norm.cdf((4.5 + math.log(0.1)) / 3))),
        Case("1-D, q̄ = N(3, 1), ε = 0.5", (torch.full((1, 1), 3.0), torch.zeros(1, 1), 0.5, 20000, gen(3)),
             float(norm.cdf((4.5 + math.log(0.5)) / 3))),
    ]
    # two clouds at (±2, 0) with std 0.5: q̄/p < ε exactly where the mixture density is below ε·φ₂(z)
    from .diagnostics import hole_mass

    ref = hole_mass(two, torch.full((2, 2), math.log(0.25)), eps=0.2, n_prior=200000, generator=gen(4))["hole_mass"]
    cases.append(Case("2-D, two clouds at (±2, 0), std 0.5, ε = 0.2", (two, torch.full((2, 2), math.log(0.25)), 0.2, 20000,
                                                                        gen(5)), ref))
    return run_cases("Exercise 4.1c (hole mass)", fn, cases, atol=0.02,
                     hint="draw z from the PRIOR N(0, I); q̄(z) is the AVERAGE of the N posterior densities; count where "
                          "q̄(z) < ε·p(z) (compare logs for stability)")


# -- exercise 5.2: the mode-count bound and the empirical N^τ of a map ---------------------------------------

def _identity(e: torch.Tensor) -> torch.Tensor:
    return e


def _square(e: torch.Tensor) -> torch.Tensor:
    return e**2


def _stairs(e: torch.Tensor) -> torch.Tensor:
    """A 5-level staircase like chapter 5's, transition width 0.4 (levels 0..4): Σ_j S((ε − c_j)/0.4 + ½) with
    c_j = Φ⁻¹(j/5) and the smootherstep S(u) = 6u⁵ − 15u⁴ + 10u³ on [0, 1]."""
    from scipy.stats import norm

    c = torch.tensor(norm.ppf([0.2, 0.4, 0.6, 0.8]), dtype=torch.float64)
    u = ((e.double().reshape(-1, 1) - c) / 0.4 + 0.5).clamp(0, 1)  # [N, 4]
    return (u**3 * (10 - 15 * u + 6 * u**2)).sum(-1).reshape(e.shape).to(e.dtype)


def _count_ref(f: Callable, tau: float, centers: torch.Tensor, radius: float, n_points: int) -> int:
    from scipy.stats import norm

    r = float(norm.ppf(1 - tau / 2))
    y = f(torch.linspace(-r, r, n_points, dtype=torch.float64))
    return int(((y[:, None] - centers.double()[None, :]).abs() <= radius).any(0).sum())


def _length_ref(f: Callable, tau: float, n_points: int) -> float:
    from scipy.stats import norm

    r = float(norm.ppf(1 - tau / 2))
    return float(f(torch.linspace(-r, r, n_points, dtype=torch.float64)).diff().abs().sum())


def check_mode_count_bound(fn: Callable) -> CheckResult:
    """``fn(L, delta, tau)`` = 1 + ⌊2 r_τ L / Δ⌋ with r_τ = Φ⁻¹(1 − τ/2): the tight 1-D bound on N^τ."""
    from . import theory

    cases = [Case(f"L={L:g}, Δ={d:g}, τ={t:g}", (L, d, t), float(theory.mode_count_bound(L, d, t, form="tight")))
             for L, d, t in [(1.0, 1.0, 0.05), (0.1, 1.0, 0.05), (2.5, 0.5, 0.1), (3.0, 2.0, 0.3), (18.75, 1.0, 0.05)]]
    return run_cases("Exercise 5.2a (the 1-D mode-count bound)", fn, cases, atol=0, rtol=0,
                     hint="the central set C = [−r, r] has mass 1 − τ, so r = Φ⁻¹(1 − τ/2) (two tails of τ/2 each); "
                          "round DOWN: the paper's ceiling is valid but one too large")


def check_empirical_mode_count(fn: Callable) -> CheckResult:
    """``fn(f, tau, centers [K], radius, n_points)`` = the number of modes (intervals of ``radius`` around
    ``centers``) that the image of n_points grid points of C = [−r_τ, r_τ] touches, for a map f: [N] -> [N]."""
    grid = torch.arange(-3.0, 4.0)
    cases = [
        Case("identity, modes at the integers ±0.05, τ=0.05", (_identity, 0.05, grid, 0.05, 2001),
             _count_ref(_identity, 0.05, grid, 0.05, 2001)),
        Case("identity, τ=0.5 (a small central set)", (_identity, 0.5, grid, 0.05, 2001),
             _count_ref(_identity, 0.5, grid, 0.05, 2001)),
        Case("ε², modes at 0, 1, 4, 9 (4 and 9 only reached from the tails)",
             (_square, 0.05, torch.tensor([0.0, 1.0, 4.0, 9.0]), 0.1, 2001),
             _count_ref(_square, 0.05, torch.tensor([0.0, 1.0, 4.0, 9.0]), 0.1, 2001)),
        Case("the 5-level staircase of chapter 5, w=0.4", (_stairs, 0.05, torch.arange(5.0), 0.25, 4001),
             _count_ref(_stairs, 0.05, torch.arange(5.0), 0.25, 4001)),
        Case("a constant map between two modes", (lambda e: torch.full_like(e, 0.5), 0.05, torch.tensor([0.0, 1.0]), 0.1, 101),
             0),
    ]
    return run_cases("Exercise 5.2b (empirical N^τ)", fn, cases, atol=0, rtol=0,
                     hint="evaluate f on n_points evenly spaced points of [−r, r] (endpoints included), r = Φ⁻¹(1 − τ/2); "
                          "a mode counts once if ANY image point is within radius of its centre")


def check_image_length(fn: Callable) -> CheckResult:
    """``fn(f, tau, n_points)`` = Σ_i |f(ε_{i+1}) − f(ε_i)| over n_points grid points of [−r_τ, r_τ]."""
    cases = [Case(label, (f, t, n), _length_ref(f, t, n)) for label, f, t, n in [
        ("identity, τ=0.05", _identity, 0.05, 1001),
        ("ε² (goes down, then up)", _square, 0.05, 1001),
        ("the staircase, w=0.4", _stairs, 0.05, 4001),
        ("identity, τ=0.3", _identity, 0.3, 11),
    ]]
    return run_cases("Exercise 5.2c (image length ℓ)", fn, cases, atol=1e-6, rtol=1e-6,
                     hint="sum the absolute differences of consecutive image points — not |f(r) − f(−r)|, which misses "
                          "a map that turns back")


# -- exercise 6.1: mode coverage and bridge mass from samples ----------------------------------------------

def _points_around(centers: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Samples near each centre at distances spread over [0, 1.2]: inside, just outside, far outside radius 0.5."""
    K, n = centers.shape
    dirs = torch.randn(K, 12, n, generator=generator)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    dist = torch.linspace(0.0, 1.2, 12)[None, :, None]
    return (centers[:, None, :] + dist * dirs).reshape(-1, n)


def check_assign(fn: Callable) -> CheckResult:
    """``fn(samples [N, n], centers [K, n], radius)`` = labels ``[N]``: the nearest centre's index if it
    is within ``radius``, else −1."""
    from .diagnostics import assign_modes

    g = torch.Generator().manual_seed(71)
    cases = []
    for K, n in [(3, 2), (2, 8), (4, 1)]:
        centers = 3.0 * torch.randn(K, n, generator=g)
        centers = centers + 4.0 * torch.arange(K)[:, None]  # well separated
        x = _points_around(centers, g)
        cases.append(Case(f"K={K} modes in {n}-D, radius 0.5", (x, centers, 0.5),
                          torch.as_tensor(assign_modes(x, centers, 0.5))))
    on_edge = torch.tensor([[0.5, 0.0], [0.0, -0.5], [0.0, 0.5001]])
    cases.append(Case("samples exactly at the radius belong to the mode", (on_edge, torch.zeros(1, 2), 0.5),
                      torch.tensor([0, 0, -1])))
    return run_cases("Exercise 6.1a (assign samples to modes)", fn, cases, atol=0, rtol=0,
                     hint="Euclidean distance (not squared) to every centre; take the nearest; −1 if it is farther than radius")


def check_coverage(fn: Callable) -> CheckResult:
    """``fn(labels [N], K, tau)`` = (mass [K], bridge, n_covered): the fraction of ALL samples in each mode,
    the fraction in no mode (label −1), and the number of modes with mass > τ (strictly)."""
    def ref(labels, K, tau):
        mass = torch.stack([(labels == k).float().mean() for k in range(K)])
        return (mass, float((labels < 0).float().mean()), int((mass > tau).sum()))

    g = torch.Generator().manual_seed(72)
    cases = []
    for N, K in [(200, 3), (50, 5)]:
        labels = torch.randint(-1, K, (N,), generator=g)
        cases.append(Case(f"{N} samples, K={K}, τ=0.05", (labels, K, 0.05), ref(labels, K, 0.05)))
    edge = torch.tensor([0] * 10 + [1] * 2 + [-1] * 8)  # mode 1 has mass exactly τ = 0.1
    cases.append(Case("a mode with mass exactly τ is NOT covered", (edge, 3, 0.1), ref(edge, 3, 0.1)))
    none = torch.full((7,), -1)
    cases.append(Case("every sample off-support", (none, 2, 0.05), ref(none, 2, 0.05)))
    return run_cases("Exercise 6.1b (coverage and bridge mass)", fn, cases,
                     hint="divide by the number of ALL samples (off-support ones too); covered means mass > τ, strictly")


def check_bridge_floor(fn: Callable) -> CheckResult:
    """``fn(m, delta, L)`` = Φ(Φ⁻¹(m) + Δ/L) − m, the isoperimetric floor on the bridge mass (app-isoperimetry, part 2)."""
    from . import theory

    cases = [Case(f"m={m:g}, Δ={d:g}, L={L:g}", (m, d, L), theory.bridge_mass_bound(L, d, m))
             for m, d, L in [(0.05, 1.0, 1.0), (0.30, 1.0, 1.0), (0.45, 2.0, 20.0), (0.2, 0.5, 3.0)]]
    cases.append(Case("m = 0: nothing to bridge", (0.0, 1.0, 1.0), 0.0))
    return run_cases("Exercise 6.1c (the bridge-mass floor)", fn, cases, atol=1e-6,
                     hint="the preimages are Δ/L apart in base space (the FULL Δ/L, not half); enlarge the lighter "
                          "one by Δ/L: Φ(Φ⁻¹(m) + Δ/L), and subtract its own mass m")


__all__ += ["check_mode_count_bound", "check_empirical_mode_count", "check_image_length",
            "check_assign", "check_coverage", "check_bridge_floor"]
