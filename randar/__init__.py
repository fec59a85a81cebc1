"""RandAR Studio: random-order autoregressive image generation and zero-shot editing."""

__version__ = "0.1.0"
