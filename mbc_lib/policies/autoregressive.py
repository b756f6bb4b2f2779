"""Autoregressive token policy: the chunk as a sequence of discrete tokens, decoded one by one
(RT-1/RT-2 and OpenVLA's action tokens; BeT's bins plus a continuous offset, Shafiullah et al. 2022).

Tokens. The normalised chunk a ∈ R^{H×d_a} is read in time-major order (step 1's d_a elements,
then step 2's, ...) as n = H·d_a scalars a_1..a_n. Each is clipped to [−R, R] (R = ``bin_range``)
and binned into one of Q = ``n_bins`` uniform bins of width w = 2R/Q:

    y_i = ⌊(clip(a_i) + R) / w⌋ ∈ {0..Q−1},      a_i = m(y_i) + w·u_i,      m(y) = −R + (y + ½)·w,

so y_i is the token, m(y_i) the centre of its bin and u_i ∈ [−½, ½] the position of a_i inside
the bin (in bin widths).

Model. One causal network over the tokens, conditioned on the observation s:

    p_θ(y_1..y_n | s) = Π_{i=1..n} p_θ(y_i | s, y_<i),      p_θ(· | s, y_<i) = softmax(ℓ_θ(s, y_<i)),

with logits ℓ_θ over the Q bins. With the offset head (``offset=True``) the element is
a_i = m(y_i) + w·o_θ(s, y_<i)[y_i]: one offset per bin, read at the bin that was drawn.
s enters through the shared residual MLP backbone (an embedding added to every position); the
earlier tokens (bin and value) reach position i through a small causal network of width C_d
(``decoder_width``; the backbone's width unless set, and the cost of every token evaluation
grows as C_d²): a GRU (``decoder="gru"``, the default: about half the cost of the
Transformer per training step on a CPU) or a causal Transformer (``"transformer"``, nanoGPT's
pre-norm block, the architecture of RT and OpenVLA).

Objective (teacher forcing: every position sees the true earlier tokens, one parallel pass):

    L = (1/n) Σ_i −log p_θ(y_i | s, y_<i)                        cross-entropy, nats per token
      + λ_o · (1/n) Σ_i (o_θ(s, y_<i)[y_i] − u_i)²                BeT's offset, on the true bin only

(λ_o = ``offset_weight``; the second line only with ``offset=True``). Sampling decodes token by
token: y_i from softmax(ℓ_i / ``temperature``), then a_i = m(y_i) + w·clip(o_i[y_i], ±½).
That is n sequential network evaluations per chunk (:meth:`AutoregressivePolicy.nfe`), each
reusing the state of the earlier tokens (the GRU's hidden state, the Transformer's keys and
values). Drawing a token is a discontinuous function of the sampling noise, so the Lipschitz
argument of chapters 5–6 (a smooth map of Gaussian noise must bridge its modes) does not
constrain it; what the head pays instead is the bin width (or the offset head that removes it)
and n sequential evaluations per chunk.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..nets import ResMLP
from .base import Policy, PolicyConfig, register

__all__ = ["AutoregressiveConfig", "AutoregressivePolicy", "CausalBlock"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class AutoregressiveConfig(PolicyConfig):
    n_bins: int = 32  # Q, bins per action element (RT-1 and OpenVLA use 256 over the whole action range)
    bin_range: float = 3.0  # R: bins tile [−R, R] in normalised units (stds); values beyond go to the end bins
    offset: bool = True  # BeT's continuous offset head: a_i = bin centre + predicted position in the bin
    offset_weight: float = 1.0  # λ_o, weight of the offset MSE (in squared bin widths) against the cross-entropy
    temperature: float = 1.0  # divides every token's logits when sampling (1 samples the learned distribution)
    decoder: str = "gru"  # causal network over the tokens: "gru" (fastest on a CPU) | "transformer" (RT/OpenVLA)
    layers: int = 2  # GRU layers or Transformer blocks
    decoder_width: int | None = None  # C_d, the causal network's width (None: the backbone's width)
    heads: int = 4  # attention heads per Transformer block (must divide the backbone width)

    def validate(self) -> None:
        if not _is_int(self.n_bins) or self.n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2 (bins per action element, e.g. 32), got {self.n_bins!r}")
        if not _is_real(self.bin_range) or self.bin_range <= 0:
            raise ValueError(f"bin_range must be a finite number > 0 (half-width of the binned interval in "
                             f"normalised units, e.g. 3.0), got {self.bin_range!r}")
        if not isinstance(self.offset, bool):
            raise ValueError(f"offset must be True or False (the continuous offset head), got {self.offset!r}")
        if not _is_real(self.offset_weight) or self.offset_weight < 0:
            raise ValueError(f"offset_weight must be a finite number >= 0, got {self.offset_weight!r}")
        if not _is_real(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0 (1 samples the learned distribution), "
                             f"got {self.temperature!r}")
        if self.decoder not in ("gru", "transformer"):
            raise ValueError(f"decoder must be 'gru' or 'transformer', got {self.decoder!r}")
        if not _is_int(self.layers) or self.layers < 1:
            raise ValueError(f"layers must be an integer >= 1 (GRU layers or Transformer blocks), got {self.layers!r}")
        if not _is_int(self.heads) or self.heads < 1:
            raise ValueError(f"heads must be an integer >= 1, got {self.heads!r}")
        if self.decoder_width is not None and (not _is_int(self.decoder_width) or self.decoder_width < 1):
            raise ValueError(f"decoder_width must be an integer >= 1 (the causal network's width, e.g. 64) or None "
                             f"(the backbone's width), got {self.decoder_width!r}")
        if self.decoder == "transformer" and self.token_width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide the decoder width ({self.token_width}) "
                             f"for the transformer decoder")

    @property
    def token_width(self) -> int:
        """C_d: the width of the token embeddings and of the causal network."""
        return self.backbone.width if self.decoder_width is None else self.decoder_width

    @property
    def bin_width(self) -> float:
        """w = 2R/Q, in normalised action units."""
        return 2.0 * self.bin_range / self.n_bins


class CausalBlock(nn.Module):
    """Pre-norm Transformer block with causal self-attention (nanoGPT's ``Block``):

        x ← x + Attn(LN(x)),    x ← x + MLP(LN(x)),    MLP = Linear(C, 4C) · GELU · Linear(4C, C).

    ``forward(x [B, P, C], past=None) -> (y [B, P, C], (k, v))``. Without ``past`` the P positions
    attend causally to each other (training); with ``past = (k, v)`` of the earlier positions
    (each ``[B, heads, P₀, C/heads]``) the new positions attend to all of those and to themselves
    (decoding one token at a time; the returned keys/values include the new ones)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, P, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)  # each [B, P, C]
        q, k, v = (t.view(B, P, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))  # [B, h, P, C/h]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # [B, h, P₀+P, C/h]
        # decoding passes one new token (P = 1), which attends to every earlier key: no mask then
        y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and P > 1)  # [B, h, P, C/h]
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, P, C)))  # [B, P, C]
        x = x + self.drop(self.mlp(self.ln2(x)))  # [B, P, C]
        return x, (k, v)


@register("autoregressive")
class AutoregressivePolicy(Policy):
    Config = AutoregressiveConfig
    SCALAR_FIELDS = ("offset_weight",)
    SAMPLING_FIELDS = ("temperature",)

    def __init__(self, config: AutoregressiveConfig):
        super().__init__(config)
        C, Q, chunk_numel, bb = config.token_width, config.n_bins, config.chunk_numel, config.backbone
        self.obs_net = ResMLP(config.obs_dim, C, bb)  # s -> conditioning vector [C_d] added to every position
        self.tok_emb = nn.Embedding(Q + 1, C)  # bins 0..Q−1, and Q = "begin" (the input of position 1)
        self.val_emb = nn.Linear(1, C)  # the previous element's value: tells the network which bins are near
        self.pos_emb = nn.Parameter(0.02 * torch.randn(chunk_numel, C))  # one learned vector per token position
        if config.decoder == "gru":
            self.rnn = nn.GRU(C, C, num_layers=config.layers, batch_first=True,
                              dropout=bb.dropout if config.layers > 1 else 0.0)
        else:
            self.blocks = nn.ModuleList(CausalBlock(C, config.heads, bb.dropout) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, Q * (2 if config.offset else 1))  # logits ℓ over bins (, offset o per bin)

    def nfe(self) -> int:
        """Sequential network evaluations per sampled chunk: one per token, n = H·d_a."""
        return self.config.chunk_numel

    # -- tokens (normalised units) ---------------------------------------------------------
    def _tokenize(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """Chunk ``[B, H, d]`` -> tokens y ``[B, H·d]`` (long) and in-bin positions u ``[B, H·d]`` in [−½, ½]."""
        cfg = self.config
        R, Q, w = cfg.bin_range, cfg.n_bins, cfg.bin_width
        x = (a.flatten(1).clamp(-R, R) + R) / w  # time-major, in bin widths from −R, [B, H·d]
        y = x.floor().long().clamp_(0, Q - 1)  # [B, H·d]  (x = Q, i.e. a = R, belongs to the last bin)
        return y, x - y - 0.5

    def _detokenize(self, y: Tensor, u: Tensor | None) -> Tensor:
        """Tokens ``[..., H·d]`` (and in-bin positions, or ``None`` for the centres) -> values ``[..., H·d]``."""
        cfg = self.config
        pos = y.to(self.pos_emb.dtype) + 0.5 + (u if u is not None else 0.0)  # [..., H·d], in bin widths from −R
        return pos * cfg.bin_width - cfg.bin_range

    # -- the network -----------------------------------------------------------------------
    def _heads(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """Hidden states ``[..., C]`` -> logits ℓ ``[..., Q]`` and offsets o ``[..., Q]`` (or ``None``)."""
        out = self.head(self.ln_f(h))  # [..., Q] or [..., 2Q]
        if not self.config.offset:
            return out, None
        logits, offsets = out.chunk(2, dim=-1)
        return logits, offsets

    def _causal(self, x: Tensor, state: object = None) -> tuple[Tensor, object]:
        """The causal network: inputs ``[B, P, C]`` -> hidden states ``[B, P, C]``, each from its
        own and earlier positions. ``state`` carries the earlier positions between calls (the GRU's
        hidden state ``[layers, B, C]``, or every block's keys and values); ``None`` starts afresh."""
        if self.config.decoder == "gru":
            return self.rnn(x, state)
        past = state if state is not None else [None] * len(self.blocks)
        present = []
        for block, kv in zip(self.blocks, past):
            x, kv = block(x, kv)
            present.append(kv)
        return x, present

    def _inputs(self, y: Tensor, value: Tensor) -> Tensor:
        """The input at a position from the previous token ``[...]`` and its value ``[...]``
        (normalised units) -> ``[..., C]``. Bin embeddings alone know nothing of which bins are
        neighbours; the value does. Token Q with value 0 is the "begin" input."""
        return self.tok_emb(y) + self.val_emb(value[..., None])

    def _forward(self, s: Tensor, y: Tensor, u: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: normalised obs ``[B, obs_dim]``, true tokens and in-bin positions ``[B, H·d]``
        -> logits and offsets ``[B, H·d, Q]`` of every position, each from the tokens before it."""
        B = y.shape[0]
        value = self._detokenize(y, u if self.config.offset else None)  # what sampling feeds back, [B, H·d]
        prev_y = torch.cat([y.new_full((B, 1), self.config.n_bins), y[:, :-1]], dim=1)  # y_{i−1} -> y_i, [B, H·d]
        prev_v = torch.cat([value.new_zeros(B, 1), value[:, :-1]], dim=1)  # [B, H·d]
        x = self._inputs(prev_y, prev_v) + self.pos_emb + self.obs_net(s)[:, None, :]  # [B, H·d, C]
        h, _ = self._causal(x)  # [B, H·d, C]
        return self._heads(h)  # [B, H·d, Q], [B, H·d, Q] | None

    # -- training ----------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Teacher-forced cross-entropy (+ offset MSE); no randomness: ``generator`` and ``noise`` are unused."""
        cfg = self.config
        obs, chunk = self.check_batch(batch)  # normalised [B, obs_dim], [B, H, d]
        y, u = self._tokenize(chunk)  # [B, H·d], [B, H·d]
        logits, offsets = self._forward(obs, y, u)  # [B, H·d, Q], [B, H·d, Q] | None
        ce = F.cross_entropy(logits.reshape(-1, cfg.n_bins).float(), y.reshape(-1))  # nats per token
        parts = {"ce": ce.detach()}
        loss = ce
        if offsets is not None:  # masked MSE: only the true bin's offset is trained
            o = offsets.gather(-1, y[..., None])[..., 0].float()  # [B, H·d]
            mse = (o - u).pow(2).mean()  # squared bin widths
            loss = loss + self.scalar("offset_weight", scalars) * mse
            parts["offset"] = mse.detach()
        clipped = (chunk.abs() > cfg.bin_range).float().mean()  # fraction of elements outside [−R, R]
        return {"loss": loss, **parts, "clipped": clipped}

    @classmethod
    def unbatchable(cls, config: AutoregressiveConfig) -> str | None:
        if config.decoder == "gru":
            return "torch.vmap has no batching rule for the GRU (decoder='transformer' batches)"
        return super().unbatchable(config)

    # -- sampling: one token at a time ---------------------------------------------------------
    @torch.no_grad()
    def sample(self, obs: Tensor, n: int = 1, generator: torch.Generator | None = None,
               temperature: float | None = None) -> Tensor:
        """``n`` chunks per observation, ``[B, n, H, d]`` in task units; ``temperature`` overrides
        the config for this call (below 1 sharpens every token's distribution)."""
        n = self.check_n(n)
        cfg = self.config
        temp = cfg.temperature if temperature is None else temperature
        if not _is_real(temp) or temp <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {temp!r}")
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        B = s.shape[0]
        cond = self.obs_net(s).repeat_interleave(n, 0)  # [B*n, C]
        y = torch.full((B * n,), cfg.n_bins, dtype=torch.long, device=s.device)  # "begin", [B*n]
        value = torch.zeros(B * n, device=s.device)  # [B*n]
        state, values = None, []
        for i in range(cfg.chunk_numel):  # one network evaluation per token
            x = (self._inputs(y, value) + self.pos_emb[i] + cond)[:, None, :]  # [B*n, 1, C]
            h, state = self._causal(x, state)  # [B*n, 1, C]
            logits, offsets = self._heads(h[:, 0])  # [B*n, Q], [B*n, Q] | None
            y = self.categorical(logits.float() / temp, generator)  # y_i, [B*n]
            u = offsets.gather(-1, y[:, None])[:, 0].float().clamp(-0.5, 0.5) if offsets is not None else None
            value = self._detokenize(y, u)  # a_i, [B*n]
            values.append(value)
        a = torch.stack(values, dim=1).reshape(B, n, cfg.chunk_len, cfg.action_dim)  # [B, n, H, d]
        return self.normalizer.unnormalize_actions(a)

    # -- views for the diagnostics (task units) --------------------------------------------------
    def tokenize(self, chunk: Tensor) -> Tensor:
        """The tokens of ``chunk [B, H, d]`` (task units), ``[B, H·d]`` (long), time-major."""
        if not isinstance(chunk, Tensor) or chunk.ndim != 3:
            raise ValueError(f"chunk must be a tensor [B, H={self.config.chunk_len}, d={self.config.action_dim}]")
        obs = torch.zeros(chunk.shape[0], self.config.obs_dim, device=self.device)
        return self._tokenize(self.check_batch({"obs": obs, "chunk": chunk})[1])[0]

    def detokenize(self, tokens: Tensor) -> Tensor:
        """Bin centres of ``tokens [B, H·d]`` as a chunk ``[B, H, d]`` in task units."""
        cfg = self.config
        if tokens.ndim != 2 or tokens.shape[1] != cfg.chunk_numel:
            raise ValueError(f"tokens must be [B, {cfg.chunk_numel}], got shape {tuple(tokens.shape)}")
        a = self._detokenize(tokens.to(self.device), None).reshape(-1, cfg.chunk_len, cfg.action_dim)
        return self.normalizer.unnormalize_actions(a)

    @torch.no_grad()
    def reconstruct(self, obs: Tensor, chunk: Tensor) -> Tensor:
        """A demonstration as the policy represents it, ``[B, H, d]`` in task units: its own bins,
        plus the offsets the head predicts for them from the true earlier tokens (with
        ``offset=True``; the bin centres otherwise). Its distance to ``chunk`` is the
        quantisation error of the token representation."""
        s, a = self.check_batch({"obs": obs, "chunk": chunk})
        y, u = self._tokenize(a)  # [B, H·d]
        _, offsets = self._forward(s, y, u)  # [B, H·d, Q] | None
        u = offsets.gather(-1, y[..., None])[..., 0].float().clamp(-0.5, 0.5) if offsets is not None else None
        return self.normalizer.unnormalize_actions(self._detokenize(y, u).reshape_as(a))

    @torch.no_grad()
    def log_prob(self, obs: Tensor, chunk: Tensor) -> Tensor:
        """log p_θ(y_1..y_n | s) of the chunk's tokens in nats, ``[B]`` (a probability over bins,
        not a density over actions)."""
        s, a = self.check_batch({"obs": obs, "chunk": chunk})
        y, u = self._tokenize(a)  # [B, H·d]
        logits, _ = self._forward(s, y, u)  # [B, H·d, Q]
        return logits.float().log_softmax(-1).gather(-1, y[..., None])[..., 0].sum(-1)
