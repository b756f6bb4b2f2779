"""Measurements of the two mode-loss mechanisms on samples, latents and maps (the book's appendix, app-diagnostics).

Everything takes plain tensors/arrays and callables, never a policy object, so the same
functions measure any policy family, a dataset, or a hand-made map with a known answer.

The ten diagnostics of the book's appendix (app-diagnostics), item → function:

1. demo mode structure ............ :func:`cluster_modes`, :func:`cluster_modes_by_obs`, :func:`neighbourhoods`
2. policy mode count and weights .. :func:`mode_coverage` (N̂^τ, p̂_k, missing modes, TV, Wilson CIs),
                                     :func:`mode_coverage_per_obs`, :func:`summarize_coverage`
3. bridge / off-support mass ...... ``mode_coverage(...).off_support``, :func:`bridge_check`
4. sampler stretch ................ :func:`jacobian_spectral_norm`, :func:`segment_profile`
5. transition width ............... ``segment_profile(..., centers=...).off_length / .off_mass``
   (and N̂^τ, app-counting) ............... :func:`empirical_mode_count`
6. KL decomposition ............... :func:`gaussian_kl`, :func:`kl_split`
7. latent identifiability ......... :func:`identification_error`, :func:`fano_check`
8. prior coverage ................. :func:`prior_typicality`, :func:`hole_mass`, and
                                     :func:`mode_coverage` on chunks decoded from prior samples (c_k(s))
9. distribution match ............. :func:`sinkhorn_divergence`, :func:`mmd2`
10. predicted collapse ............ :func:`predicted_collapse`
"""
from __future__ import annotations

from .distances import entropic_ot, median_bandwidth, mmd2, sinkhorn_divergence
from .information import (
    KLSplit,
    PriorTypicality,
    fano_check,
    gaussian_kl,
    gaussian_kl_per_dim,
    hole_mass,
    identification_error,
    kl_split,
    predicted_collapse,
    prior_typicality,
)
from .lipschitz import (
    ModeCount,
    SegmentProfile,
    empirical_mode_count,
    jacobian_spectral_norm,
    random_segments,
    segment_profile,
)
from .modes import (
    ClusteredModes,
    ModeCoverage,
    as_array,
    assign_modes,
    bridge_check,
    cluster_modes,
    cluster_modes_by_obs,
    flatten_chunks,
    mode_coverage,
    mode_coverage_per_obs,
    neighbourhoods,
    separation_regime,
    summarize_coverage,
    wilson_interval,
)

__all__ = [
    # modes
    "as_array", "flatten_chunks", "wilson_interval", "assign_modes", "ModeCoverage", "mode_coverage",
    "mode_coverage_per_obs", "summarize_coverage", "bridge_check", "ClusteredModes", "cluster_modes",
    "cluster_modes_by_obs", "neighbourhoods", "separation_regime",
    # information
    "gaussian_kl", "gaussian_kl_per_dim", "KLSplit", "kl_split", "PriorTypicality", "prior_typicality", "hole_mass",
    "identification_error", "fano_check", "predicted_collapse",
    # lipschitz
    "jacobian_spectral_norm", "SegmentProfile", "segment_profile", "random_segments", "ModeCount",
    "empirical_mode_count",
    # distances
    "sinkhorn_divergence", "entropic_ot", "mmd2", "median_bandwidth",
]
