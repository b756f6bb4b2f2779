"""The one contract every policy family follows.

A policy is an ``nn.Module`` with

* ``loss(batch, generator=None) -> {"loss": scalar, <parts>...}`` on a batch from
  :meth:`mbc_lib.data.ChunkDataset.batch` (raw task units; the policy normalises). Every random
  number the loss uses (reparameterisation noise, diffusion steps, flow times) comes from
  ``generator`` (torch's global generator when ``None``), drawn up front by
  ``loss_noise(batch_size, generator)``; ``loss(batch, noise=...)`` takes those draws instead;
* ``sample(obs [B, obs_dim], n=1, generator=None) -> [B, n, H, action_dim]`` in task units;
* a ``config`` dataclass (subclass of :class:`PolicyConfig`) validated on construction.

Because the loss's randomness and its scalar settings (``SCALAR_FIELDS``, e.g. the CVAE's β) can
be handed in as tensors, one training loop (:func:`mbc_lib.train.train`) runs the *same* ``loss``
either on one model or under ``torch.vmap`` over the stacked weights of many models
(``forward`` is ``loss``, so ``torch.func.functional_call`` can call it).

Latent-variable policies add ``encode`` / ``prior``; transport policies
(diffusion, flow) add ``transport(obs, base_noise) -> chunk``.
Families register themselves with :func:`register` and are built by name with
:func:`mbc_lib.policies.make`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..data import Normalizer
from ..nets import BackboneConfig

__all__ = ["Policy", "PolicyConfig", "register", "REGISTRY", "batches_prechecked"]

#: family name -> policy class
REGISTRY: dict[str, type[Policy]] = {}

_PRECHECKED: ContextVar[bool] = ContextVar("mbc_batches_prechecked", default=False)


@contextmanager
def batches_prechecked() -> Iterator[None]:
    """Inside this block ``loss`` skips the NaN/inf check of its batch (its shapes are still
    checked). :func:`mbc_lib.train.train` uses it: its batches come from a
    :class:`~mbc_lib.data.ChunkDataset`, whose tensors were checked when it was built, and the
    check would cost a host sync per training step on a GPU."""
    token = _PRECHECKED.set(True)
    try:
        yield
    finally:
        _PRECHECKED.reset(token)


def _as_float_tensor(x: Any, name: str) -> Tensor:
    try:
        return torch.as_tensor(x, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or an array of numbers, got {type(x).__name__} ({err})") from None


def _check_finite(t: Tensor, name: str, fix: str) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf) of {t.numel()}; {fix}")


def register(name: str):
    """Class decorator: make a policy family buildable as ``make(name, ...)``."""

    def deco(cls: type[Policy]) -> type[Policy]:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"policy family {name!r} is registered twice")
        cls.family = name
        REGISTRY[name] = cls
        return cls

    return deco


@dataclass
class PolicyConfig:
    """Fields every family shares. Subclasses add their own, each with a default."""

    obs_dim: int = 1  # observation features
    action_dim: int = 1  # action features per step
    chunk_len: int = 1  # H, steps per action chunk
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):  # e.g. after a checkpoint round trip
            self.backbone = BackboneConfig(**self.backbone)
        for name in ("obs_dim", "action_dim", "chunk_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        bb = self.backbone
        if not isinstance(bb, BackboneConfig):
            raise TypeError(f"backbone must be a BackboneConfig or a dict of its fields, got {type(bb).__name__}")
        for name, low in (("width", 1), ("depth", 0), ("time_embed_dim", 2)):
            value = getattr(bb, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} (backbone) must be an integer >= {low}, got {value!r}")
        self.validate()

    def validate(self) -> None:
        """Family-specific checks; raise ``ValueError`` with what was expected."""

    @property
    def chunk_numel(self) -> int:
        """H · action_dim, the length of a flattened chunk (the book's n = H·d_a; in the code ``n``
        counts samples per observation, as in ``sample(obs, n)``)."""
        return self.chunk_len * self.action_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> PolicyConfig:
        """Build from keyword arguments; ``width``/``depth`` are accepted as backbone shortcuts."""
        known = {f.name for f in fields(cls)}
        backbone_keys = {f.name for f in fields(BackboneConfig)}
        bb = kwargs.pop("backbone", None)
        bb = dict(asdict(bb) if isinstance(bb, BackboneConfig) else (bb or {}))
        for key in list(kwargs):
            if key in backbone_keys and key not in known:
                bb[key] = kwargs.pop(key)
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(
                f"{cls.__name__} got unknown option(s) {sorted(unknown)}; "
                f"valid options: {sorted(known | backbone_keys)}"
            )
        return cls(backbone=BackboneConfig(**bb), **kwargs)


class Policy(nn.Module):
    """Base class: holds the config and a :class:`~mbc_lib.data.Normalizer`."""

    family: ClassVar[str] = "?"
    Config: ClassVar[type[PolicyConfig]] = PolicyConfig

    def __init__(self, config: PolicyConfig):
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config
        self.normalizer = Normalizer(config.obs_dim, config.action_dim)

    #: config fields that may differ between the models of one batched training run: ``loss``
    #: reads them through :meth:`scalar`, so they can arrive as per-model tensors under vmap
    SCALAR_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: config fields that only sampling reads: models of one batched run may differ there freely
    SAMPLING_FIELDS: ClassVar[tuple[str, ...]] = ()

    # -- the contract -----------------------------------------------------------
    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None,
             scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """The training loss and its parts. ``noise`` (default ``loss_noise(B, generator)``) holds every
        random draw; ``scalars`` overrides :attr:`SCALAR_FIELDS` of the config (batched training)."""
        raise NotImplementedError

    def loss_noise(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Every random draw one ``loss`` call on ``batch_size`` samples makes, from ``generator``
        (torch's global generator when ``None``), in the order the loss uses them; ``{}`` when the
        loss is deterministic."""
        return {}

    def forward(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
                noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The same as :meth:`loss` (the module's call is its training loss, LeRobot's convention):
        ``torch.func.functional_call`` runs it with another model's weights."""
        return self.loss(batch, generator, noise=noise, scalars=scalars)

    def scalar(self, name: str, scalars: dict[str, Tensor] | None = None) -> Any:
        """Config field ``name`` of :attr:`SCALAR_FIELDS`: this model's value from ``scalars`` in a
        batched run (a tensor), else the config's (a Python number)."""
        return scalars[name] if scalars is not None and name in scalars else getattr(self.config, name)

    @classmethod
    def unbatchable(cls, config: PolicyConfig) -> str | None:
        """Why this family's loss with ``config`` cannot run under ``torch.vmap`` over stacked
        weights (so such policies are trained one by one), or ``None``."""
        if config.backbone.dropout > 0:
            return "backbone dropout > 0 (dropout draws its own noise, not reproduced per model)"
        return None

    def sample(self, obs: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def nfe(self) -> int:
        """Sequential network evaluations per sampled chunk with the config's sampler: the latency
        price of one query (1 for the one-shot heads; the samplers and the token head override it)."""
        return 1

    # -- helpers shared by the families -----------------------------------------
    @property
    def device(self) -> torch.device:
        return self.normalizer.obs_mean.device

    def check_obs(self, obs: Tensor) -> Tensor:
        """Validate ``obs [B, obs_dim]`` and move it to the policy's device."""
        if not isinstance(obs, Tensor):
            obs = _as_float_tensor(obs, "obs")
        if obs.ndim != 2 or obs.shape[1] != self.config.obs_dim:
            raise ValueError(f"obs must be [B, {self.config.obs_dim}], got shape {tuple(obs.shape)}")
        if not _PRECHECKED.get():
            _check_finite(obs, "obs", "observations must be finite numbers (check the data or the environment)")
        return obs.to(self.device, torch.float32)

    def check_batch(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Validated, normalised ``(obs [B, obs_dim], chunk [B, H, d])`` from a batch dict."""
        if "obs" not in batch or "chunk" not in batch:
            raise ValueError(f"a batch needs keys 'obs' and 'chunk', got {sorted(batch)}")
        obs, chunk = self.check_obs(batch["obs"]), batch["chunk"]
        if not isinstance(chunk, Tensor):
            chunk = _as_float_tensor(chunk, "batch['chunk']")
        cfg = self.config
        if chunk.ndim != 3 or chunk.shape[1:] != (cfg.chunk_len, cfg.action_dim) or chunk.shape[0] != obs.shape[0]:
            raise ValueError(
                f"chunk must be [B={obs.shape[0]}, H={cfg.chunk_len}, action_dim={cfg.action_dim}], "
                f"got shape {tuple(chunk.shape)}"
            )
        if not _PRECHECKED.get():
            _check_finite(chunk, "batch['chunk']", "action chunks must be finite numbers (clean the data first)")
        return self.normalizer.normalize_obs(obs), self.normalizer.normalize_actions(chunk.to(self.device))

    @staticmethod
    def check_n(n: int) -> int:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n (samples per observation) must be an integer >= 1, got {n!r}")
        return n

    @staticmethod
    def check_steps(steps: int | None, default: int) -> int:
        """The number of sampling steps: ``steps`` if given (an integer >= 1), else ``default``."""
        if steps is None:
            return default
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps (sampling steps) must be an integer >= 1, got {steps!r}")
        return steps

    # -- randomness for the loss and for sampling: everything comes from ``generator`` when given ---------
    # The noise is drawn on the generator's own device and then moved, so a CPU generator
    # also drives a policy on CUDA, and the same seed gives the same numbers on one device.
    def randn(self, *shape: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise ``[*shape]`` on the policy's device."""
        device = generator.device if generator is not None else self.device
        return torch.randn(shape, generator=generator, device=device).to(self.device)

    def rand(self, *shape: int, generator: torch.Generator | None = None) -> Tensor:
        """Uniform noise on ``[0, 1)``, ``[*shape]``, on the policy's device."""
        device = generator.device if generator is not None else self.device
        return torch.rand(shape, generator=generator, device=device).to(self.device)

    def randint(self, low: int, high: int, *shape: int, generator: torch.Generator | None = None) -> Tensor:
        """Integers uniform on ``[low, high)``, ``[*shape]`` (long), on the policy's device."""
        device = generator.device if generator is not None else self.device
        return torch.randint(low, high, shape, generator=generator, device=device).to(self.device)

    def categorical(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One index per row of ``logits [..., K]`` drawn from softmax(logits), ``[...]`` (long).

        Gumbel-max: ``argmax_k (logits_k + G_k)`` with ``G = −log(−log U)`` is an exact
        draw from the softmax, and needs only uniform noise from ``generator``."""
        u = self.rand(*logits.shape, generator=generator).clamp_(1e-12, 1.0 - 1e-7)
        return (logits - torch.log(-torch.log(u))).argmax(-1)

    def extra_repr(self) -> str:
        return f"family={self.family!r}"
