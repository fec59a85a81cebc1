"""RandAR Studio: random-order autoregressive image generation and zero-shot editing."""
