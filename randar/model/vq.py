"""LlamaGen-layout VQ image tokenizer: images <-> grids of discrete codes.

The module names below (conv_blocks.{l}.res.{b}, mid.{0,1,2}, quantize.embedding, ...) are the key names
of the official `vq_ds16_c2i.pt`, so official and our own checkpoints load strictly into this one class.
The network is fully convolutional apart from a few global self-attention layers, so any image whose
sides are multiples of the downsample factor can be encoded, and any code grid decoded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import Pretrained
from .config import VQConfig

from .tokenizer import ImageTokenizer

__all__ = ["VQModel", "VectorQuantizer", "Encoder", "Decoder"]


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # only created when the width changes, so that its presence in a checkpoint matches the official one
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        shortcut = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions (only used at the lowest resolution)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        x_norm = self.norm(x)
        # [B, C, H, W] -> [B, 1, HW, C]: one head, positions as the sequence; SDPA's default 1/sqrt(C) scale
        q, k, v = (proj(x_norm).reshape(b, 1, c, h * w).transpose(2, 3) for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(2, 3).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        # asymmetric zero padding (right and bottom only) as in the official model, so even sides halve exactly
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        ch, ch_mult = config.ch, config.ch_mult
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        in_ch_mult = (1,) + tuple(ch_mult)
        self.conv_blocks = nn.ModuleList()
        last = len(ch_mult) - 1
        block_in = ch
        for level in range(len(ch_mult)):
            block_in, block_out = ch * in_ch_mult[level], ch * ch_mult[level]
            stage = nn.Module()
            stage.res = nn.ModuleList()
            stage.attn = nn.ModuleList()  # empty except at the last (lowest-resolution) level
            for _ in range(config.num_res_blocks):
                stage.res.append(ResnetBlock(block_in, block_out, config.dropout))
                block_in = block_out
                if level == last:
                    stage.attn.append(AttnBlock(block_in))
            if level != last:
                stage.downsample = Downsample(block_in)
            self.conv_blocks.append(stage)
        self.mid = nn.ModuleList(
            [ResnetBlock(block_in, block_in, config.dropout), AttnBlock(block_in), ResnetBlock(block_in, block_in, config.dropout)]
        )
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, config.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for stage in self.conv_blocks:
            h = run_level(stage, h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(swish(self.norm_out(h)))


def run_level(stage: nn.Module, h: Tensor) -> Tensor:
    """One resolution level of the encoder or decoder: its res blocks, each followed by its attention block
    where the level has them (the official layout keeps them in two parallel lists)."""
    for i, res in enumerate(stage.res):
        h = res(h)
        if len(stage.attn):
            h = stage.attn[i](h)
    return h


class Decoder(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        ch, ch_mult = config.ch, tuple(config.ch_mult)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(config.z_channels, block_in, 3, padding=1)
        self.mid = nn.ModuleList(
            [ResnetBlock(block_in, block_in, config.dropout), AttnBlock(block_in), ResnetBlock(block_in, block_in, config.dropout)]
        )
        # level 0 is the lowest resolution: the official decoder walks ch_mult backwards
        self.conv_blocks = nn.ModuleList()
        last = len(ch_mult) - 1
        for level, mult in enumerate(reversed(ch_mult)):
            block_out = ch * mult
            stage = nn.Module()
            stage.res = nn.ModuleList()
            stage.attn = nn.ModuleList()
            for _ in range(config.decoder_res_blocks + 1):
                stage.res.append(ResnetBlock(block_in, block_out, config.dropout))
                block_in = block_out
                if level == 0:
                    stage.attn.append(AttnBlock(block_in))
            if level != last:
                stage.upsample = Upsample(block_in)
            self.conv_blocks.append(stage)
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for stage in self.conv_blocks:
            h = run_level(stage, h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest-code lookup with a straight-through gradient and the VQ-VAE codebook/commitment losses.

    With `l2_norm` both the latents and the codebook live on the unit sphere (LlamaGen's choice: it keeps
    codebook usage high), so the nearest code by squared distance is the one with the largest cosine.
    """

    def __init__(self, codebook_size: int, embed_dim: int, l2_norm: bool = True, beta: float = 0.25,
                 entropy_weight: float = 0.0, entropy_temperature: float = 0.01):
        super().__init__()
        self.codebook_size, self.embed_dim, self.l2_norm = codebook_size, embed_dim, l2_norm
        self.beta, self.entropy_weight, self.entropy_temperature = beta, entropy_weight, entropy_temperature
        self.embedding = nn.Embedding(codebook_size, embed_dim)
        self.embedding.weight.data.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        # The official checkpoint also carries `codebook_used` (a training-time usage log). It is deliberately
        # not a buffer here: inference never reads it, and loaders ignore it whether or not a file has it.

    def codebook(self) -> Tensor:
        w = self.embedding.weight
        return F.normalize(w, p=2, dim=-1) if self.l2_norm else w

    def lookup(self, codes: Tensor) -> Tensor:
        """Code indices [B, h, w] -> latent vectors [B, embed_dim, h, w] (what the decoder consumes)."""
        return F.embedding(codes, self.codebook()).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z [B, embed_dim, h, w] -> (z_q with straight-through gradient, codes [B, h, w], losses).

        Losses are only computed in training mode (empty dict in eval), so inference pays nothing for them.
        """
        b, c, h, w = z.shape
        z = z.permute(0, 2, 3, 1).reshape(-1, c)
        if self.l2_norm:
            z = F.normalize(z, p=2, dim=-1)
        codebook = self.codebook()
        # |z|^2 + |e|^2 - 2 z.e, in float32 even for half-precision models so that near-ties resolve the
        # same way as the float32 reference implementation
        zf, ef = z.float(), codebook.float()
        dist = zf.pow(2).sum(1, keepdim=True) + ef.pow(2).sum(1) - 2 * (zf @ ef.t())
        codes = dist.argmin(dim=1)
        z_q = codebook[codes]

        losses: dict[str, Tensor] = {}
        if self.training:
            losses["codebook_loss"] = F.mse_loss(z_q, z.detach())  # pulls codes towards the encoder outputs
            losses["commitment_loss"] = self.beta * F.mse_loss(z, z_q.detach())  # keeps the encoder near its codes
            if self.entropy_weight > 0:
                losses["entropy_loss"] = self.entropy_weight * self.entropy_loss(-dist)
        z_q = z + (z_q - z).detach()  # straight-through: forward uses the code, backward treats it as identity
        z_q = z_q.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return z_q, codes.reshape(b, h, w), losses

    def entropy_loss(self, affinity: Tensor) -> Tensor:
        """Low per-position entropy (confident assignments) minus high batch entropy (all codes used)."""
        logits = affinity / self.entropy_temperature
        probs = logits.softmax(dim=-1)
        log_probs = logits.log_softmax(dim=-1)
        per_sample = -(probs * log_probs).sum(-1).mean()
        avg = probs.mean(0)
        batch = -(avg * torch.log(avg + 1e-5)).sum()
        return per_sample - batch


class VQModel(ImageTokenizer, Pretrained, nn.Module):
    config_section = "vq"
    ignored_keys = frozenset({"quantize.codebook_used"})  # a training-time usage counter

    @classmethod
    def config_class(cls) -> type:
        return VQConfig

    def __init__(self, config: VQConfig, beta: float = 0.25, entropy_weight: float = 0.0):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim, config.z_channels, 1)
        self.quantize = VectorQuantizer(config.codebook_size, config.codebook_embed_dim, config.codebook_l2_norm,
                                        beta=beta, entropy_weight=entropy_weight)

    # ---- inference (encode / decode in model pixels: ImageTokenizer) -------------------------------------

    @torch.inference_mode()
    def encode_native(self, images: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [-1, 1] (this network's range is the package's) -> codes [B, H/f, W/f]."""
        _, codes, _ = self.quantize(self.quant_conv(self.encoder(self.check_images(images))))
        return codes

    def _decode_latent_codes(self, codes: Tensor) -> Tensor:
        """Checked codes [B, h, w] -> images, roughly in [-1, 1] (not clamped). Runs under inference_mode (no
        autograd); training decodes through `decode_latent` instead."""
        z = self.quantize.lookup(codes)
        if z.device.type == "cpu":
            # oneDNN runs these convolutions in its channels-last (NHWC) kernels 1.2-1.5x faster than NCHW
            # (one 128x128 image: 70 -> 52 ms on one core); pixels move by at most 1/255 in a few places.
            z = z.contiguous(memory_format=torch.channels_last)
        return self.decode_latent(z).contiguous()

    def decode_latent(self, z_q: Tensor) -> Tensor:
        """Quantised latents [B, embed_dim, h, w] -> images (differentiable; used by training too)."""
        return self.decoder(self.post_quant_conv(z_q))

    # ---- training -----------------------------------------------------------------------------------

    def forward(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Reconstruction and the auxiliary terms a trainer adds to its pixel/perceptual/GAN losses.

        aux holds `codes` [B, h, w], `usage` (fraction of the codebook hit by this batch) and, in training
        mode, `codebook_loss`, `commitment_loss` (already scaled by beta) and optionally `entropy_loss`.
        """
        z_q, codes, losses = self.quantize(self.quant_conv(self.encoder(images)))
        recon = self.decode_latent(z_q)
        usage = torch.unique(codes).numel() / self.config.codebook_size
        aux: dict[str, Tensor] = {"codes": codes, "usage": torch.tensor(usage), **losses}
        return recon, aux
