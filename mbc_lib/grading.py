"""Checks that the exercise notebooks call.

Each ``check_*`` function runs the student's function on several cases (edge cases
included), compares with reference behaviour and returns a :class:`CheckResult` that
displays as a short report: which case failed, expected versus got, and a hint. It
never raises for a wrong or unfinished answer (an unfinished exercise reports
"not implemented yet"), so an exercise notebook always runs top to bottom, and it never
shows the reference code.
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
           "check_flow_matching_loss", "check_euler_sampler"]


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
    try:
        g = float(got)
    except Exception:
        return False, f"expected a number, got {type(got).__name__}"
    if math.isfinite(expected) and not math.isclose(g, expected, abs_tol=atol, rel_tol=rtol):
        return False, f"expected {expected:.6g}, got {g:.6g}"
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


# -- exercise 1: regression and the averaging of modes -----------------------------------------------

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
    return run_cases("Exercise 1a (L2 loss)", fn, _regression_cases("l2"),
                     hint="average the squared error over every element, not the sum and not the root")


def check_l1_loss(fn: Callable) -> CheckResult:
    """``fn(pred, target)`` = mean over all elements of |pred − target|."""
    return run_cases("Exercise 1a (L1 loss)", fn, _regression_cases("l1"),
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
    return run_cases("Exercise 1b (optimal constant prediction)", fn, cases,
                     hint="for l2 the minimiser is the mean; for l1 it is a median (odd-sized samples: the middle value)")


# -- exercise 2: chunk execution ------------------------------------------------------------------------

def check_ensemble_weights(fn: Callable) -> CheckResult:
    """``fn(n, m)`` = ACT's weights exp(−m·i), i = 0 oldest, normalised, as a tensor [n]."""
    from .control import ensemble_weights

    cases = [Case(f"n={n}, m={m}", (n, m), ensemble_weights(n, m)) for n, m in [(1, 0.01), (4, 0.0), (4, 0.5), (6, 2.0)]]
    return run_cases("Exercise 2a (temporal-ensembling weights)", fn, cases,
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
    return run_cases("Exercise 2b (action queue)", fn, cases,
                     hint="query only when the queue is empty, at the current step t, and execute the first n_action_steps actions")


def check_ensemble_execution(fn: Callable) -> CheckResult:
    """``fn(chunk_at, H, m, T)`` = the T executed actions of temporal ensembling (query every step)."""
    cases = [Case(f"H={H}, m={m}, T={T}", (_chunk_at(H), H, m, T), _run_executor(H, T, m=m))
             for H, m, T in [(3, 0.0, 6), (4, 0.5, 7), (2, 5.0, 4), (1, 0.1, 3)]]
    return run_cases("Exercise 2c (temporal ensembling)", fn, cases,
                     hint="at step t, the chunk queried at step q ≤ t predicts its element t − q; use only chunks with t − q < H")


# -- exercise 5: flow matching ---------------------------------------------------------------------------

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
    return run_cases("Exercise 5a (flow-matching loss)", fn, cases,
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
    return run_cases("Exercise 5b (Euler sampler)", fn, cases,
                     hint="start at t = 0, step size 1/steps, evaluate v at the START of each step, end at t = 1")
