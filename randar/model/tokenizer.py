"""The one interface every image tokenizer offers the engine, the tasks and the previews.

Why an interface: RandAR checkpoints come with two tokenizers (LlamaGen's VQ-16 and the MaskGIT-VQGAN) that
differ in architecture and in the range of their pixels ([-1, 1] for LlamaGen, [0, 1] for MaskGIT). Everything
above the model layer works in the package's pixel convention (randar.io.images: x = u8 / 127.5 - 1), so the
tokenizer says its own range (`pixel_range`) and converts at its boundary; no caller asks which kind it has.

    encode(images [B, 3, H, W] in [-1, 1]) -> codes [B, H/f, W/f]
    decode(codes [B, h, w] or [B, h*w] square) -> images [B, 3, h*f, w*f] in [-1, 1] (callers clamp)
    config.codebook_size / downsample / grid_size / image_size, device, dtype, encoder, decoder

`encode_native` / `decode_native` take and give the network's own range (reference parity checks use them).
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

__all__ = ["ImageTokenizer", "MODEL_PIXEL_RANGE"]

MODEL_PIXEL_RANGE = (-1.0, 1.0)  # the package's convention for pixels in tensors (randar.io.images)


class ImageTokenizer:
    """Mixin for tokenizer modules: the shared encode/decode in model pixels, input checks, device and dtype.

    A subclass sets `pixel_range` (the range its network was trained on), has its codebook at
    `quantize.embedding`, and implements `encode_native` and `_decode_latent_codes` (checked codes [B, h, w] on
    its device -> native pixels)."""

    pixel_range: ClassVar[tuple[float, float]] = MODEL_PIXEL_RANGE
    config: object  # a VQConfig or MaskGITVQConfig: codebook_size, downsample, grid_size, image_size

    # ---- facts --------------------------------------------------------------------------------------

    @property
    def downsample(self) -> int:
        return self.config.downsample  # type: ignore[attr-defined]

    @property
    def kind(self) -> str:
        return self.config.kind  # type: ignore[attr-defined]

    @property
    def dtype(self) -> torch.dtype:
        return self.quantize.embedding.weight.dtype  # type: ignore[attr-defined]

    @property
    def device(self) -> torch.device:
        return self.quantize.embedding.weight.device  # type: ignore[attr-defined]

    # ---- pixel ranges -------------------------------------------------------------------------------

    def to_native(self, images: Tensor) -> Tensor:
        """Model pixels ([-1, 1]) -> this network's range; the same tensor when the ranges agree."""
        lo, hi = self.pixel_range
        if (lo, hi) == MODEL_PIXEL_RANGE:
            return images
        m_lo, m_hi = MODEL_PIXEL_RANGE
        return (images - m_lo) * ((hi - lo) / (m_hi - m_lo)) + lo

    def from_native(self, images: Tensor) -> Tensor:
        """This network's range -> model pixels ([-1, 1]); the same tensor when the ranges agree."""
        lo, hi = self.pixel_range
        if (lo, hi) == MODEL_PIXEL_RANGE:
            return images
        m_lo, m_hi = MODEL_PIXEL_RANGE
        return (images - lo) * ((m_hi - m_lo) / (hi - lo)) + m_lo

    # ---- inference ----------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, images: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [-1, 1] -> codes [B, H/f, W/f] (int64). H and W: any multiples of f."""
        return self.encode_native(self.to_native(images))

    @torch.inference_mode()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes [B, h, w] -> images [B, 3, h*f, w*f] in [-1, 1] (roughly: callers clamp), in the model's dtype.

        A [B, N] raster sequence is accepted when N is a perfect square (the usual square token grid)."""
        return self.from_native(self.decode_native(codes))

    def encode_native(self, images: Tensor) -> Tensor:
        """Images in `pixel_range` -> codes [B, H/f, W/f]; checks them with `check_images`."""
        raise NotImplementedError

    @torch.inference_mode()
    def decode_native(self, codes: Tensor) -> Tensor:
        """Codes -> images in `pixel_range` (see `decode`)."""
        return self._decode_latent_codes(self.check_codes(codes))

    def _decode_latent_codes(self, codes: Tensor) -> Tensor:
        raise NotImplementedError

    # ---- input checks -------------------------------------------------------------------------------

    def check_images(self, images: Tensor) -> Tensor:
        """`images` on the tokenizer's device and dtype, or ValueError saying what is wrong with their shape."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        f = self.downsample
        if H % f or W % f:
            raise ValueError(f"image size {H}x{W} is not a multiple of the tokenizer's downsample factor {f}")
        return images.to(device=self.device, dtype=self.dtype)

    def check_codes(self, codes: Tensor) -> Tensor:
        """Codes as a long [B, h, w] grid on the tokenizer's device, or ValueError (an out-of-range index would
        be an opaque device-side assert on a GPU)."""
        if codes.ndim == 2:
            side = math.isqrt(codes.shape[1])
            if side * side != codes.shape[1]:
                raise ValueError(f"{codes.shape[1]} codes per image is not a square grid; pass codes as [B, h, w]")
            codes = codes.reshape(codes.shape[0], side, side)
        if codes.ndim != 3:
            raise ValueError(f"expected codes of shape [B, h, w], got {tuple(codes.shape)}")
        codes = codes.to(device=self.device, dtype=torch.long)
        n = self.config.codebook_size  # type: ignore[attr-defined]
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= n):
            raise ValueError(f"codes must lie in [0, {n}), got [{int(codes.min())}, {int(codes.max())}]")
        return codes
