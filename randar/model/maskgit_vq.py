"""MaskGIT-VQGAN image tokenizer (f = 16, 1024 plain codes): the tokenizer of RandAR-L/MaskGIT.

The weights are `maskgit-vqgan-imagenet-f16-256.bin` (published with TiTok): a bare PyTorch state dict whose key
names (`encoder.down.{l}.block.{b}`, `decoder.up.{l}.upsample_conv`, `quantize.embedding`, ...) are the module
names below, so it loads strictly into this class. What makes it differ from LlamaGen's VQ, and what parity with
the official outputs depends on:

* pixels in [0, 1] (`pixel_range`; the ImageTokenizer interface converts from and to the package's [-1, 1]),
  and the decoder's output clamped to [0, 1];
* a plain codebook (not l2-normalised), no quant_conv / post_quant_conv, no attention blocks;
* every convolution pads "same" the TensorFlow way (the model was ported from JAX);
* a residual block whose channel count changes adds a 1x1 projection of its OWN OUTPUT instead of its input
  (y = h + nin_shortcut(h)): a quirk of the original, kept because the weights were trained with it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import Pretrained
from .config import MaskGITVQConfig

from .tokenizer import ImageTokenizer

__all__ = ["MaskGITVQ", "SameConv2d"]


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" padding along one axis: (before, after); the odd pixel, if any, goes after."""
    out = -(-size // stride)  # ceil
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding, computed from the input size.

    For the stride-1, odd-kernel convolutions this model has, that is k // 2 on every side, which is handed to
    the convolution itself (no padded copy of the input); other shapes (even kernels, strides) pad explicitly,
    the odd pixel after, as TensorFlow does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=kernel_size // 2 if symmetric else 0, bias=bias)
        self._symmetric = symmetric

    def forward(self, x: Tensor) -> Tensor:
        if not self._symmetric:
            top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = SameConv2d(in_channels, out_channels, 3, bias=False)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = SameConv2d(out_channels, out_channels, 3, bias=False)
        # out -> out, and only where the width changes: the official layout (and its quirk, see forward)
        if in_channels != out_channels:
            self.nin_shortcut = SameConv2d(out_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            return h + self.nin_shortcut(h)  # the block's own output, not x: what the weights were trained with
        return h + x


def _level(blocks: list[ResnetBlock]) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    return level


class Encoder(nn.Module):
    def __init__(self, config: MaskGITVQConfig):
        super().__init__()
        ch, mult = config.hidden_channels, tuple(config.channel_mult)
        in_mult = (1,) + mult
        self.conv_in = SameConv2d(3, ch, 3, bias=False)
        self.down = nn.ModuleList()
        for level in range(len(mult)):
            block_in, block_out = ch * in_mult[level], ch * mult[level]
            blocks = []
            for _ in range(config.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, config.dropout))
                block_in = block_out
            self.down.append(_level(blocks))
        width = ch * mult[-1]
        self.mid = nn.ModuleList(ResnetBlock(width, width, config.dropout) for _ in range(config.num_res_blocks))
        self.norm_out = group_norm(width)
        self.conv_out = SameConv2d(width, config.z_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        last = len(self.down) - 1
        for i, level in enumerate(self.down):
            for block in level.block:
                h = block(h)
            if i != last:
                h = F.avg_pool2d(h, kernel_size=2, stride=2)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, config: MaskGITVQConfig):
        super().__init__()
        ch, mult = config.hidden_channels, tuple(config.channel_mult)
        width = ch * mult[-1]
        self.conv_in = SameConv2d(config.z_channels, width, 3)
        self.mid = nn.ModuleList(ResnetBlock(width, width, config.dropout) for _ in range(config.num_res_blocks))
        # up[l] is level l; they run from the lowest resolution (the last level) to level 0, which is why the
        # list is built in index order but walked backwards in forward
        ups: list[nn.Module] = []
        for level in range(len(mult)):
            block_in = ch * (mult[level + 1] if level + 1 < len(mult) else mult[-1])
            block_out = ch * mult[level]
            blocks = []
            for _ in range(config.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, config.dropout))
                block_in = block_out
            up = _level(blocks)
            if level != 0:
                up.upsample_conv = SameConv2d(block_out, block_out, 3)
            ups.append(up)
        self.up = nn.ModuleList(ups)
        self.norm_out = group_norm(ch * mult[0])
        self.conv_out = SameConv2d(ch * mult[0], 3, 3)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample_conv"):
                h = level.upsample_conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class PlainQuantizer(nn.Module):
    """Nearest code by squared distance in an un-normalised codebook (inference only: the weights are fixed)."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)

    def codes(self, z: Tensor) -> Tensor:
        """z [B, C, h, w] -> codes [B, h, w]; ties go to the first index (argmin), as in the official code."""
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c).float()
        e = self.embedding.weight.float()
        # |z|^2 + |e|^2 - 2 z.e, in float32 whatever the model's dtype (near-ties resolve like the reference)
        dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * (flat @ e.t())
        return dist.argmin(dim=1).reshape(b, h, w)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes [B, h, w] -> code vectors [B, C, h, w]."""
        return self.embedding(codes).permute(0, 3, 1, 2).contiguous()


class MaskGITVQ(ImageTokenizer, Pretrained, nn.Module):
    """The MaskGIT-VQGAN: images in [0, 1] <-> grids of codes (any multiple of f = 16 per side)."""

    pixel_range = (0.0, 1.0)
    config_section = "vq"

    @classmethod
    def config_class(cls) -> type:
        return MaskGITVQConfig

    def __init__(self, config: MaskGITVQConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = PlainQuantizer(config.num_embeddings, config.embedding_dim)

    @torch.inference_mode()
    def encode_native(self, images: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [0, 1] -> codes [B, H/16, W/16] (int64)."""
        return self.quantize.codes(self.encoder(self.check_images(images)))

    def _decode_latent_codes(self, codes: Tensor) -> Tensor:
        """Checked codes [B, h, w] -> images in [0, 1] (clamped, as the official decoder does)."""
        z = self.quantize.lookup(codes)
        if z.device.type == "cpu":
            z = z.contiguous(memory_format=torch.channels_last)  # oneDNN's faster NHWC kernels (see vq.py)
        return self.decoder(z).clamp(0.0, 1.0).contiguous()
