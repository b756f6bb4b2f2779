"""The exercise checks accept the right answer and reject the stub and plausible wrong answers."""
import torch

from mbc_lib import grading
from mbc_lib.control import ensemble_weights


def _stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


def _assert_rejects(result, *, not_implemented=False):
    assert not result.passed and result.messages
    assert result.not_implemented == not_implemented
    assert "not implemented" in str(result) if not_implemented else "expected" in str(result) or "raised" in str(result)


def test_losses():
    assert grading.check_l2_loss(lambda p, t: (p - t).pow(2).mean())
    assert grading.check_l1_loss(lambda p, t: (p - t).abs().mean())
    _assert_rejects(grading.check_l2_loss(_stub), not_implemented=True)
    _assert_rejects(grading.check_l2_loss(lambda p, t: (p - t).pow(2).sum()))  # sum instead of mean
    _assert_rejects(grading.check_l2_loss(lambda p, t: (p - t).pow(2).mean().sqrt()))  # RMSE
    _assert_rejects(grading.check_l1_loss(lambda p, t: (p - t).mean()))  # forgot the absolute value


def test_optimal_constant():
    assert grading.check_optimal_constant(lambda x, loss: float(x.mean() if loss == "l2" else x.median()))
    _assert_rejects(grading.check_optimal_constant(_stub), not_implemented=True)
    _assert_rejects(grading.check_optimal_constant(lambda x, loss: float(x.mean())))  # mean for both
    # "the most common value": picks a mode, which is what a multimodal policy should do but not what regression does
    _assert_rejects(grading.check_optimal_constant(lambda x, loss: float(x.mode().values)))


def test_ensemble_weights():
    assert grading.check_ensemble_weights(ensemble_weights)
    _assert_rejects(grading.check_ensemble_weights(_stub), not_implemented=True)
    _assert_rejects(grading.check_ensemble_weights(lambda n, m: ensemble_weights(n, m).flip(0)))  # newest first
    _assert_rejects(grading.check_ensemble_weights(lambda n, m: torch.exp(-m * torch.arange(n, dtype=torch.float32))))


def _queue(chunk_at, H, n, T):
    q, out = [], []
    for t in range(T):
        if not q:
            q = chunk_at(t)[:n].tolist()
        out.append(q.pop(0))
    return out


def test_queue_execution():
    assert grading.check_queue_execution(_queue)
    _assert_rejects(grading.check_queue_execution(_stub), not_implemented=True)
    # wrong: re-queues the whole chunk instead of n_action_steps
    _assert_rejects(grading.check_queue_execution(lambda c, H, n, T: _queue(c, H, H, T)))


def _ensemble(chunk_at, H, m, T, newest_first=False):
    past, out = [], []
    for t in range(T):
        past.append((t, chunk_at(t)))
        past = [(q, c) for q, c in past if t - q < H]
        preds = torch.stack([c[t - q] for q, c in past])
        w = ensemble_weights(len(past), m)
        out.append(float(((w.flip(0) if newest_first else w) * preds).sum()))
    return out


def test_ensemble_execution():
    assert grading.check_ensemble_execution(_ensemble)
    _assert_rejects(grading.check_ensemble_execution(_stub), not_implemented=True)
    _assert_rejects(grading.check_ensemble_execution(lambda c, H, m, T: _ensemble(c, H, m, T, newest_first=True)))


def _fm_loss(v, x0, x1, t, sign=1.0):
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    return (v(xt, t) - sign * (x1 - x0)).pow(2).mean()


def _euler(v, x, steps, reverse=False):
    for k in range(steps):
        t = torch.full((x.shape[0],), (1 - k / steps) if reverse else k / steps)
        x = x + v(x, t) / steps
    return x


def test_flow_matching():
    assert grading.check_flow_matching_loss(_fm_loss)
    _assert_rejects(grading.check_flow_matching_loss(_stub), not_implemented=True)
    _assert_rejects(grading.check_flow_matching_loss(lambda v, a, b, t: _fm_loss(v, a, b, t, sign=-1.0)))  # x0 − x1
    assert grading.check_euler_sampler(_euler)
    _assert_rejects(grading.check_euler_sampler(_stub), not_implemented=True)
    _assert_rejects(grading.check_euler_sampler(lambda v, x, s: _euler(v, x, s, reverse=True)))  # time runs backwards


def test_a_crashing_answer_is_reported_not_raised():
    result = grading.check_l2_loss(lambda p, t: p @ t)
    assert not result.passed and "raised" in str(result)
