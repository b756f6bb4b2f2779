"""The checks of Exercises 3.1, 3.2 and 4.1 accept right answers and reject the stub and plausible wrong answers."""
import math

import torch
from scipy.stats import chi2

from mbc_lib import grading, theory


def _stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


def _assert_rejects(result, *, not_implemented=False):
    assert not result.passed and result.messages
    assert result.not_implemented == not_implemented
    text = str(result)
    assert "not implemented" in text if not_implemented else ("expected" in text or "raised" in text or "β̂*" in text)


# -- exercise 3.1 -----------------------------------------------------------------------------------------

def _kl(mq, lq, mp, lp, reduce="sum", swap=False):
    if swap:  # KL(p‖q): the arguments the wrong way round
        mq, lq, mp, lp = mp, lp, mq, lq
    per_dim = 0.5 * (torch.exp(lq - lp) + (mq - mp) ** 2 * torch.exp(-lp) - 1 + lp - lq)
    return per_dim.sum(-1) if reduce == "sum" else per_dim.mean(-1)


def test_gaussian_kl():
    assert grading.check_gaussian_kl(_kl)
    _assert_rejects(grading.check_gaussian_kl(_stub), not_implemented=True)
    _assert_rejects(grading.check_gaussian_kl(lambda *a: _kl(*a, swap=True)))  # KL(p‖q)
    _assert_rejects(grading.check_gaussian_kl(lambda *a: _kl(*a, reduce="mean")))  # averaged over latent dims
    _assert_rejects(grading.check_gaussian_kl(lambda *a: 2 * _kl(*a)))  # forgot the ½


def _cvae_loss(chunk, recon, mu, logvar, beta, recon_reduce="mean", kl_reduce="sum"):
    z = torch.zeros_like(mu)
    rec = (recon - chunk).pow(2)
    rec = rec.mean() if recon_reduce == "mean" else rec.sum(dim=(1, 2)).mean()
    return rec + beta * _kl(mu, logvar, z, z, reduce=kl_reduce).mean()


def test_cvae_loss():
    assert grading.check_cvae_loss(_cvae_loss)
    _assert_rejects(grading.check_cvae_loss(_stub), not_implemented=True)
    _assert_rejects(grading.check_cvae_loss(lambda *a: _cvae_loss(*a, kl_reduce="mean")))  # KL mean over dims
    _assert_rejects(grading.check_cvae_loss(lambda *a: _cvae_loss(*a, recon_reduce="sum")))  # summed reconstruction
    _assert_rejects(grading.check_cvae_loss(lambda c, r, m, lv, b: b * (r - c).pow(2).mean()
                                            + _kl(m, lv, 0 * m, 0 * m).mean()))  # β on the wrong term


def _fano(weights, rho, log=math.log, forget_k_term=False):
    w = [float(x) for x in weights if x > 0]
    H = -sum(p * log(p) for p in w)
    h = -sum(p * log(p) for p in (rho, 1 - rho) if p > 0)
    K = len(weights)
    return H - h - (0.0 if forget_k_term or K < 2 else rho * log(K - 1))


def test_fano_bound():
    assert grading.check_fano_bound(_fano)
    _assert_rejects(grading.check_fano_bound(_stub), not_implemented=True)
    _assert_rejects(grading.check_fano_bound(lambda w, r: _fano(w, r, log=math.log2)))  # bits, not nats
    _assert_rejects(grading.check_fano_bound(lambda w, r: _fano(w, r, forget_k_term=True)))  # no ρ log(K−1)


# -- exercise 3.2 -----------------------------------------------------------------------------------------

def test_critical_beta_equal():
    assert grading.check_critical_beta_equal(theory.critical_beta_equal_spacing)
    _assert_rejects(grading.check_critical_beta_equal(_stub), not_implemented=True)
    # the naive estimate is not the threshold
    _assert_rejects(grading.check_critical_beta_equal(
        lambda K, d, s, sd: (d**2 * (K**2 - 1) / 12) / (2 * sd**2 * math.log(max(K, 2)))))
    _assert_rejects(grading.check_critical_beta_equal(lambda K, d, s, sd: (d**2 * (K**2 - 1) / 12) / sd**2))  # no σ²


def _beta_hard(centers, weights, sigma_d, log=torch.log, two=2.0):
    w = weights / weights.sum()
    v_b = float((w * (centers - (w * centers).sum()) ** 2).sum())
    return v_b / (two * sigma_d**2 * float(-(w * log(w)).sum()))


def test_beta_hard():
    assert grading.check_beta_hard(_beta_hard)
    _assert_rejects(grading.check_beta_hard(_stub), not_implemented=True)
    _assert_rejects(grading.check_beta_hard(lambda c, w, sd: _beta_hard(c, w, sd, log=torch.log2)))
    _assert_rejects(grading.check_beta_hard(lambda c, w, sd: _beta_hard(c, w, sd, two=1.0)))


def test_fork_beta_star():
    good = lambda dc, s, sa, n: 2 * ((s / sa) ** 2 + (dc / sa) ** 2 / 4) / n  # noqa: E731
    assert grading.check_fork_beta_star(good)
    _assert_rejects(grading.check_fork_beta_star(_stub), not_implemented=True)
    _assert_rejects(grading.check_fork_beta_star(lambda dc, s, sa, n: 2 * (s**2 + dc**2 / 4) / n))  # not normalised
    _assert_rejects(grading.check_fork_beta_star(lambda dc, s, sa, n: ((s / sa) ** 2 + (dc / sa) ** 2 / 4) / n))


def test_collapse_prediction_rejects_stub_and_a_wrong_prediction():
    _assert_rejects(grading.check_collapse_prediction(_stub, profile="fast"), not_implemented=True)
    # forgetting the normalisation predicts β* ≈ 0.25 instead of ≈ 0.54: at "1.5·β̂*" the latent is still alive
    wrong = grading.check_collapse_prediction(lambda dc, s, sa, n: 2 * (s**2 + dc**2 / 4) / n, profile="fast")
    _assert_rejects(wrong)
    assert "too small" in str(wrong)
    # a function that raises is reported, not propagated
    _assert_rejects(grading.check_collapse_prediction(lambda *a: 1 / 0, profile="fast"))


# -- exercise 4.1 -----------------------------------------------------------------------------------------

def _log_density(z, mp, lp, const=True, logdet=True):
    out = -0.5 * ((z - mp) ** 2 * torch.exp(-lp)).sum(-1)
    if logdet:
        out = out - 0.5 * lp.sum()
    if const:
        out = out - 0.5 * z.shape[1] * math.log(2 * math.pi)
    return out


def test_log_prior_density():
    assert grading.check_log_prior_density(_log_density)
    _assert_rejects(grading.check_log_prior_density(_stub), not_implemented=True)
    _assert_rejects(grading.check_log_prior_density(lambda z, m, lv: _log_density(z, m, lv, logdet=False)))
    _assert_rejects(grading.check_log_prior_density(lambda z, m, lv: _log_density(z, m, lv, const=False)))


def _percentile(mq, mp, lp, square=True, survival=False):
    r2 = ((mq - mp) ** 2 * torch.exp(-lp)).sum(-1)
    r = r2 if square else r2.sqrt()
    p = chi2.sf(r.numpy(), mq.shape[1]) if survival else chi2.cdf(r.numpy(), mq.shape[1])
    return torch.as_tensor(p, dtype=torch.float32)


def test_chi2_percentile():
    assert grading.check_chi2_percentile(_percentile)
    _assert_rejects(grading.check_chi2_percentile(_stub), not_implemented=True)
    _assert_rejects(grading.check_chi2_percentile(lambda *a: _percentile(*a, square=False)))  # radius, not r²
    _assert_rejects(grading.check_chi2_percentile(lambda *a: _percentile(*a, survival=True)))  # 1 − F


def _holes(mu_q, logvar_q, eps, n_prior, generator, invert=False, from_posterior=False):
    d = mu_q.shape[1]
    z = torch.randn(n_prior, d, generator=generator)
    if from_posterior:  # samples of q̄ instead of the prior
        idx = torch.randint(0, mu_q.shape[0], (n_prior,), generator=generator)
        z = mu_q[idx] + torch.exp(0.5 * logvar_q[idx]) * z
    comp = -0.5 * ((z[:, None] - mu_q[None]) ** 2 * torch.exp(-logvar_q)[None] + logvar_q[None]
                   + math.log(2 * math.pi)).sum(-1)
    log_q = torch.logsumexp(comp, 1) - math.log(mu_q.shape[0])
    log_p = -0.5 * (z**2 + math.log(2 * math.pi)).sum(-1)
    ratio = log_p - log_q if invert else log_q - log_p
    return float((ratio < math.log(eps)).float().mean())


def test_hole_mass():
    assert grading.check_hole_mass(_holes)
    _assert_rejects(grading.check_hole_mass(_stub), not_implemented=True)
    _assert_rejects(grading.check_hole_mass(lambda *a: _holes(*a, invert=True)))  # p/q̄ < ε
    _assert_rejects(grading.check_hole_mass(lambda *a: _holes(*a, from_posterior=True)))  # wrong sampling distribution
