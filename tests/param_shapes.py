"""The official state-dict layouts, parameter by parameter: the check on the sizes randar/registry records.

randar/registry/catalogue.py records each official file's size instead of deriving it; these tables derive
every tensor's shape from a config (RandAR transformer, LlamaGen VQ, MaskGIT-VQGAN), agree with the reference
bundles written by the official code (tests/test_registry.py), and so check the recorded sizes and build fake
weight files. They are written from the key-layout facts, independently of randar/model/.
"""
from __future__ import annotations

from randar.model.config import GPTConfig, MaskGITVQConfig, TokenizerConfig, VQConfig


def gpt_param_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a RandAR transformer state dict, by its official key, with its shape."""
    d, h, v = cfg.dim, cfg.hidden_dim, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "cls_embedding.embedding_table.weight": (cfg.num_classes + 1, d),  # + the null class used for CFG
        "tok_embeddings.weight": (v, d),
        "pos_instruct_embeddings": (1, d),
    }
    for i in range(cfg.n_layer):
        p = f"layers.{i}."
        shapes[p + "attention_norm.weight"] = (d,)
        shapes[p + "attention.wqkv.weight"] = (3 * d, d)
        shapes[p + "attention.wo.weight"] = (d, d)
        shapes[p + "ffn_norm.weight"] = (d,)
        shapes[p + "feed_forward.w1.weight"] = (h, d)
        shapes[p + "feed_forward.w3.weight"] = (h, d)
        shapes[p + "feed_forward.w2.weight"] = (d, h)
    shapes["norm.weight"] = (d,)
    shapes["output.weight"] = (v, d)
    return shapes


def vq_param_shapes(cfg: TokenizerConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a tokenizer state dict (encoder, decoder, quantiser), by key, with its shape."""
    if isinstance(cfg, MaskGITVQConfig):
        return maskgit_param_shapes(cfg)
    return llamagen_param_shapes(cfg)


def llamagen_param_shapes(cfg: VQConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a LlamaGen VQ state dict (encoder, decoder, quantiser), by key, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int, k: int) -> None:
        shapes[name + ".weight"] = (cout, cin, k, k)
        shapes[name + ".bias"] = (cout,)

    def norm(name: str, c: int) -> None:
        shapes[name + ".weight"] = (c,)
        shapes[name + ".bias"] = (c,)

    def res(name: str, cin: int, cout: int) -> None:
        norm(name + ".norm1", cin)
        conv(name + ".conv1", cin, cout, 3)
        norm(name + ".norm2", cout)
        conv(name + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(name + ".nin_shortcut", cin, cout, 1)

    def attn(name: str, c: int) -> None:
        norm(name + ".norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, 1)

    levels = len(cfg.ch_mult)
    # encoder
    conv("encoder.conv_in", 3, cfg.ch, 3)
    in_mult = (1,) + tuple(cfg.ch_mult)
    block_in = cfg.ch
    for lvl in range(levels):
        block_in, block_out = cfg.ch * in_mult[lvl], cfg.ch * cfg.ch_mult[lvl]
        for b in range(cfg.num_res_blocks):
            res(f"encoder.conv_blocks.{lvl}.res.{b}", block_in, block_out)
            block_in = block_out
            if lvl == levels - 1:
                attn(f"encoder.conv_blocks.{lvl}.attn.{b}", block_in)
        if lvl != levels - 1:
            conv(f"encoder.conv_blocks.{lvl}.downsample.conv", block_in, block_in, 3)
    res("encoder.mid.0", block_in, block_in)
    attn("encoder.mid.1", block_in)
    res("encoder.mid.2", block_in, block_in)
    norm("encoder.norm_out", block_in)
    conv("encoder.conv_out", block_in, cfg.z_channels, 3)
    # decoder
    block_in = cfg.ch * cfg.ch_mult[-1]
    conv("decoder.conv_in", cfg.z_channels, block_in, 3)
    res("decoder.mid.0", block_in, block_in)
    attn("decoder.mid.1", block_in)
    res("decoder.mid.2", block_in, block_in)
    for lvl in range(levels):
        block_out = cfg.ch * cfg.ch_mult[levels - 1 - lvl]
        for b in range(cfg.decoder_res_blocks + 1):
            res(f"decoder.conv_blocks.{lvl}.res.{b}", block_in, block_out)
            block_in = block_out
            if lvl == 0:
                attn(f"decoder.conv_blocks.{lvl}.attn.{b}", block_in)
        if lvl != levels - 1:
            conv(f"decoder.conv_blocks.{lvl}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", block_in, 3, 3)
    # quantiser
    conv("quant_conv", cfg.z_channels, cfg.codebook_embed_dim, 1)
    conv("post_quant_conv", cfg.codebook_embed_dim, cfg.z_channels, 1)
    shapes["quantize.embedding.weight"] = (cfg.codebook_size, cfg.codebook_embed_dim)
    shapes["quantize.codebook_used"] = (65536,)  # usage counter buffer saved with the weights
    return shapes


def maskgit_param_shapes(cfg: MaskGITVQConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a MaskGIT-VQGAN state dict: bias-free 3x3 convs in the res blocks, an out->out 1x1
    `nin_shortcut` where the width changes, avg-pool instead of down convs, `up.{l}.upsample_conv` for l > 0."""
    shapes: dict[str, tuple[int, ...]] = {}
    ch, mult, n = cfg.hidden_channels, tuple(cfg.channel_mult), cfg.num_res_blocks

    def conv(name: str, cin: int, cout: int, k: int, bias: bool) -> None:
        shapes[name + ".weight"] = (cout, cin, k, k)
        if bias:
            shapes[name + ".bias"] = (cout,)

    def norm(name: str, c: int) -> None:
        shapes[name + ".weight"] = (c,)
        shapes[name + ".bias"] = (c,)

    def res(name: str, cin: int, cout: int) -> None:
        norm(name + ".norm1", cin)
        conv(name + ".conv1", cin, cout, 3, False)
        norm(name + ".norm2", cout)
        conv(name + ".conv2", cout, cout, 3, False)
        if cin != cout:
            conv(name + ".nin_shortcut", cout, cout, 1, False)

    conv("encoder.conv_in", 3, ch, 3, False)
    in_mult = (1,) + mult
    for lvl in range(len(mult)):
        cin = ch * in_mult[lvl]
        for b in range(n):
            res(f"encoder.down.{lvl}.block.{b}", cin, ch * mult[lvl])
            cin = ch * mult[lvl]
    for b in range(n):
        res(f"encoder.mid.{b}", ch * mult[-1], ch * mult[-1])
    norm("encoder.norm_out", ch * mult[-1])
    conv("encoder.conv_out", ch * mult[-1], cfg.z_channels, 1, True)

    conv("decoder.conv_in", cfg.z_channels, ch * mult[-1], 3, True)
    for b in range(n):
        res(f"decoder.mid.{b}", ch * mult[-1], ch * mult[-1])
    for lvl in range(len(mult)):
        cin = ch * (mult[lvl + 1] if lvl + 1 < len(mult) else mult[-1])
        for b in range(n):
            res(f"decoder.up.{lvl}.block.{b}", cin, ch * mult[lvl])
            cin = ch * mult[lvl]
        if lvl != 0:
            conv(f"decoder.up.{lvl}.upsample_conv", ch * mult[lvl], ch * mult[lvl], 3, True)
    norm("decoder.norm_out", ch * mult[0])
    conv("decoder.conv_out", ch * mult[0], 3, 3, True)
    shapes["quantize.embedding.weight"] = (cfg.num_embeddings, cfg.embedding_dim)
    return shapes


def _numel(shapes: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for shape in shapes.values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


def gpt_param_count(cfg: GPTConfig) -> int:
    """Parameters of a RandAR transformer (the official file holds exactly these, float32)."""
    return _numel(gpt_param_shapes(cfg))


def vq_param_count(cfg: TokenizerConfig) -> int:
    """For LlamaGen, includes the 65536-entry usage buffer, since it is stored in the file."""
    return _numel(vq_param_shapes(cfg))
