"""The two TripoSG networks, written here on diffusers building blocks: the rectified-flow DiT and the SDF VAE.

``TripoSGDiTModel`` denoises a set of latent tokens (no spatial layout) conditioned, by cross-attention,
on DINOv2 image tokens (and, in the scribble variant, on CLIP text tokens through a second
cross-attention). ``TripoSGVAEModel`` is a perceiver: its decoder turns the latent tokens into a
key/value set once, then answers any batch of 3D points with a signed value (inside positive,
surface at 0) through one cross-attention block.

Module and parameter names follow the published ``VAST-AI/TripoSG`` checkpoint (``transformer/`` and
``vae/`` folders), so its ``diffusion_pytorch_model.safetensors`` files load with every key used.
Two details of the published weights are reproduced on purpose: the projected query/key/value are
split into heads *after* concatenation (each head takes a contiguous slice of the concatenated
projections), and the DiT's long skips run ``linear`` then ``norm`` on ``[skip, hidden]``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import FP32LayerNorm


class TripoSGAttnProcessor:
    """Scaled dot-product attention with TripoSG's head split and optional RMS q/k norm."""

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        batch = hidden_states.shape[0]
        heads = attn.heads
        query = attn.to_q(hidden_states)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        key, value = attn.to_k(context), attn.to_v(context)
        if not attn.is_cross_attention:
            # Self-attention: heads are cut from the concatenation [q | k | v], not from q, k, v apiece.
            packed = torch.cat((query, key, value), dim=-1).view(batch, -1, heads, 3 * query.shape[-1] // heads)
            query, key, value = packed.chunk(3, dim=-1)
        else:
            packed = torch.cat((key, value), dim=-1).view(batch, -1, heads, 2 * key.shape[-1] // heads)
            key, value = packed.chunk(2, dim=-1)
            query = query.view(batch, -1, heads, key.shape[-1])
        query, key, value = (t.transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, heads * query.shape[-1]).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out))


def _attention(dim: int, heads: int, cross_dim: int | None, *, qk_norm: bool, cross_norm: bool) -> Attention:
    return Attention(
        query_dim=dim, cross_attention_dim=cross_dim, dim_head=dim // heads, heads=heads,
        qk_norm="rms_norm" if qk_norm else None, cross_attention_norm="layer_norm" if cross_norm else None,
        eps=1e-6, bias=False, processor=TripoSGAttnProcessor(),
    )


class TripoSGBlock(nn.Module):
    """Pre-norm block: [long skip] -> self-attention -> cross-attention(s) -> feed-forward, each residual."""

    def __init__(self, dim: int, heads: int, *, self_attention: bool = True, cross_dim: int | None = None,
                 cross_norm: bool = False, cross_2_dim: int | None = None, qk_norm: bool = True,
                 skip: bool = False):
        super().__init__()
        self.self_attention = self_attention
        if self_attention:
            self.norm1 = FP32LayerNorm(dim, 1e-5, True)
            self.attn1 = _attention(dim, heads, None, qk_norm=qk_norm, cross_norm=False)
        self.cross_attention = cross_dim is not None
        if self.cross_attention:
            self.norm2 = FP32LayerNorm(dim, 1e-5, True)
            self.attn2 = _attention(dim, heads, cross_dim, qk_norm=qk_norm, cross_norm=cross_norm)
        self.cross_attention_2 = cross_2_dim is not None
        if self.cross_attention_2:
            self.norm2_2 = FP32LayerNorm(dim, 1e-5, True)
            self.attn2_2 = _attention(dim, heads, cross_2_dim, qk_norm=qk_norm, cross_norm=False)
        self.norm3 = FP32LayerNorm(dim, 1e-5, True)
        self.ff = FeedForward(dim, activation_fn="gelu", inner_dim=4 * dim, bias=True)
        if skip:
            self.skip_norm = FP32LayerNorm(dim, 1e-5, True)
            self.skip_linear = nn.Linear(2 * dim, dim)
        else:
            self.skip_linear = None

    def forward(self, hidden: torch.Tensor, context: torch.Tensor | None = None, context_2: torch.Tensor | None = None,
                skip: torch.Tensor | None = None, *, scale: float = 1.0, scale_2: float = 1.0) -> torch.Tensor:
        if self.skip_linear is not None:
            hidden = self.skip_norm(self.skip_linear(torch.cat((skip, hidden), dim=-1)))
        if self.self_attention:
            hidden = hidden + self.attn1(self.norm1(hidden))
        if self.cross_attention:
            update = self.attn2(self.norm2(hidden), encoder_hidden_states=context) * scale
            if self.cross_attention_2:
                update = update + self.attn2_2(self.norm2_2(hidden), encoder_hidden_states=context_2) * scale_2
            hidden = hidden + update
        return hidden + self.ff(self.norm3(hidden))


class TripoSGDiTModel(ModelMixin, ConfigMixin):
    """Velocity field of the rectified flow over latent tokens (B, N, in_channels).

    The timestep becomes one extra leading token; the first half of the blocks feed long skips to the
    second half (U-ViT style). ``use_cross_attention_2`` adds the scribble variant's second condition.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(self, num_attention_heads: int = 16, width: int = 2048, in_channels: int = 64, num_layers: int = 21,
                 cross_attention_dim: int = 1024, use_cross_attention_2: bool = False,
                 cross_attention_2_dim: int | None = None):
        super().__init__()
        self.time_embed = Timesteps(width, flip_sin_to_cos=False, downscale_freq_shift=0)
        self.time_proj = TimestepEmbedding(width, 4 * width, act_fn="gelu", out_dim=width)
        self.proj_in = nn.Linear(in_channels, width, bias=True)
        self.blocks = nn.ModuleList(
            TripoSGBlock(width, num_attention_heads, cross_dim=cross_attention_dim,
                         cross_2_dim=cross_attention_2_dim if use_cross_attention_2 else None,
                         qk_norm=True, skip=layer > num_layers // 2)
            for layer in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, in_channels, bias=True)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                context_2: torch.Tensor | None = None, *, scale: float = 1.0, scale_2: float = 1.0) -> torch.Tensor:
        n = latents.shape[1]
        if timestep.ndim == 0:
            timestep = timestep.expand(latents.shape[0])
        temb = self.time_proj(self.time_embed(timestep).to(latents.dtype))
        hidden = torch.cat([temb[:, None], self.proj_in(latents)], dim=1)
        half = self.config.num_layers // 2
        skips = []
        for layer, block in enumerate(self.blocks):
            skip = skips.pop() if layer > half else None
            hidden = block(hidden, context, context_2, skip, scale=scale, scale_2=scale_2)
            if layer < half:
                skips.append(hidden)
        return self.proj_out(self.norm_out(hidden)[:, -n:])


class FrequencyEmbedding(nn.Module):
    """(…, 3) points -> (…, 3 + 3·2F): the points, then sin and cos at F octave frequencies per coordinate."""

    def __init__(self, num_freqs: int, include_pi: bool, input_dim: int = 3):
        super().__init__()
        freqs = 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
        if include_pi:
            freqs = freqs * math.pi
        self.register_buffer("frequencies", freqs, persistent=False)
        self.out_dim = input_dim * (2 * num_freqs + 1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        angles = (points[..., None] * self.frequencies.to(points.dtype)).flatten(-2)
        return torch.cat((points, angles.sin(), angles.cos()), dim=-1)


class TripoSGEncoder(nn.Module):
    """Point cloud -> latent tokens: one cross-attention from sampled points to all points, then self-attention."""

    def __init__(self, in_channels: int, dim: int, heads: int, num_layers: int):
        super().__init__()
        self.proj_in = nn.Linear(in_channels, dim, bias=True)
        self.blocks = nn.ModuleList(
            [TripoSGBlock(dim, heads, self_attention=False, cross_dim=dim, cross_norm=True, qk_norm=False)]
            + [TripoSGBlock(dim, heads, qk_norm=False) for _ in range(num_layers)]
        )
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        hidden, context = self.proj_in(queries), self.proj_in(points)
        hidden = self.blocks[0](hidden, context)
        for block in self.blocks[1:]:
            hidden = block(hidden)
        return self.norm_out(hidden)


class TripoSGDecoder(nn.Module):
    """Latent tokens -> key/value set (self-attention, once) -> signed value at any query point (cross-attention)."""

    def __init__(self, in_channels: int, dim: int, heads: int, num_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [TripoSGBlock(dim, heads, qk_norm=False) for _ in range(num_layers)]
            + [TripoSGBlock(dim, heads, self_attention=False, cross_dim=dim, cross_norm=True, qk_norm=False)]
        )
        self.proj_query = nn.Linear(in_channels, dim, bias=True)
        self.norm_out = nn.LayerNorm(dim)
        self.proj_out = nn.Linear(dim, 1, bias=True)

    def keys(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks[:-1]:
            tokens = block(tokens)
        return tokens

    def query(self, keys: torch.Tensor, embedded_points: torch.Tensor) -> torch.Tensor:
        hidden = self.blocks[-1](self.proj_query(embedded_points), keys)
        return -self.proj_out(self.norm_out(hidden))  # the network predicts outside-positive logits


class TripoSGVAEModel(ModelMixin, ConfigMixin):
    """The shape autoencoder (published as ``Tripo2VAEModel``); generation uses its decoder only."""

    @register_to_config
    def __init__(self, in_channels: int = 3, latent_channels: int = 64, num_attention_heads: int = 8,
                 width_encoder: int = 512, width_decoder: int = 1024, num_layers_encoder: int = 8,
                 num_layers_decoder: int = 16, embedding_type: str = "frequency", embed_frequency: int = 8,
                 embed_include_pi: bool = False):
        super().__init__()
        if embedding_type != "frequency":
            raise ValueError(f"vae embedding_type must be 'frequency', got {embedding_type!r}")
        self.embedder = FrequencyEmbedding(embed_frequency, embed_include_pi, in_channels)
        self.encoder = TripoSGEncoder(in_channels + self.embedder.out_dim, width_encoder, num_attention_heads,
                                      num_layers_encoder)
        self.decoder = TripoSGDecoder(self.embedder.out_dim, width_decoder, num_attention_heads, num_layers_decoder)
        self.quant = nn.Linear(width_encoder, 2 * latent_channels, bias=True)
        self.post_quant = nn.Linear(latent_channels, width_decoder, bias=True)

    def encode(self, points: torch.Tensor, normals: torch.Tensor, num_tokens: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Surface points and normals (B, P, 3) -> posterior mean latents (B, num_tokens, C).

        Query points are a random subset (the published training used farthest-point sampling).
        """
        feats = torch.cat([self.embedder(points), normals], dim=-1)
        pick = torch.randperm(points.shape[1], generator=generator)[:num_tokens].to(points.device)
        moments = self.quant(self.encoder(feats[:, pick], feats))
        return moments.chunk(2, dim=-1)[0]

    def keys(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode the latent tokens once into the key/value set every SDF query attends to."""
        return self.decoder.keys(self.post_quant(latents))

    def sdf(self, keys: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Signed value (inside positive) at (B, P, 3) points -> (B, P)."""
        return self.decoder.query(keys, self.embedder(points.to(keys.dtype)))[..., 0]
