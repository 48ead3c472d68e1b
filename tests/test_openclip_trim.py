"""open_clip text encoding cut to the longest text of the batch: same embeddings as the full
77-token path for the standard CLIP text tower, and the full path for every other tower."""

from __future__ import annotations

import copy

import pytest
import torch

from coderclip.encoders import load_encoder
from coderclip.encoders.openclip import OpenClipEncoder, encode_text_trimmed, supports_trimmed_text

from .conftest import TINY_OPEN_CLIP

TEXTS = ["x", "a dog", "a photo of a dog.", "a photo of a cat with long whiskers, sitting on a red sofa.",
         "an aerial satellite photo of a highway, which has straight grey lanes and cars",
         " ".join(["word"] * 120)]  # longer than the context: truncated, end-of-text at the last slot


def test_trimmed_text_equals_full_context(open_clip_spec):
    enc = load_encoder(open_clip_spec, device="cpu")
    assert enc.trim_text
    tokens = enc.tokenizer(TEXTS)
    with torch.inference_mode():
        full = enc.model.encode_text(tokens)
        # with the truncated text the batch needs all 77 positions: bit-for-bit the same
        assert torch.equal(encode_text_trimmed(enc.model, tokens), full)
        # without it the matrix shapes differ, so only float32 rounding may differ (~1e-7 relative)
        fast = encode_text_trimmed(enc.model, tokens[:-1])
        assert torch.allclose(fast, full[:-1], rtol=0, atol=1e-5)
    ref = copy.copy(enc)
    ref.trim_text = False
    assert torch.allclose(enc.encode_texts(TEXTS), ref.encode_texts(TEXTS), rtol=0, atol=1e-6)


def test_trimmed_text_really_shortens_the_sequence(open_clip_spec):
    enc = load_encoder(open_clip_spec, device="cpu")
    seen = []
    hook = enc.model.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    try:
        enc.encode_texts(["a dog", "a cat"])
    finally:
        hook.remove()
    assert seen and max(seen) < 10   # start, two tokens, end: not the 77-token context


def test_other_text_towers_use_the_full_path():
    import open_clip

    def tiny(**text):
        cfg = copy.deepcopy(TINY_OPEN_CLIP)
        cfg["text_cfg"].update(text)
        return open_clip.model.CLIP(**cfg).eval()

    assert supports_trimmed_text(tiny())
    assert not supports_trimmed_text(tiny(no_causal_mask=True))   # every position sees the padding
    assert not supports_trimmed_text(tiny(pool_type="last"))     # pools the last (padding) position
    custom = open_clip.model.CustomTextCLIP(**copy.deepcopy(TINY_OPEN_CLIP)).eval()
    assert not supports_trimmed_text(custom)


def test_trim_text_can_be_turned_off(open_clip_dir):
    enc = OpenClipEncoder(f"local-dir:{open_clip_dir / 'local'}", device="cpu", trim_text=False)
    assert not enc.trim_text


@pytest.mark.parametrize("precision", ["bf16"])
def test_trimmed_text_low_precision(open_clip_spec, precision):
    enc = load_encoder(open_clip_spec, device="cpu", precision=precision)
    ref = copy.copy(enc)
    ref.trim_text = False
    if enc.trim_text:   # kept only if the load-time probe agreed within the low-precision tolerance
        assert torch.allclose(enc.encode_texts(TEXTS), ref.encode_texts(TEXTS), atol=2e-2)


def test_trim_check_is_remembered_for_the_same_weights(open_clip_dir, monkeypatch):
    from coderclip.encoders import openclip
    from coderclip.paths import cache_dir

    spec = f"local-dir:{open_clip_dir / 'local'}"
    assert OpenClipEncoder(spec, device="cpu").trim_text
    assert list((cache_dir() / "checks").glob("trim_text-*.json"))

    def not_again(*a):
        raise AssertionError("the check ran again")

    monkeypatch.setattr(openclip, "_trimmed_text_matches", not_again)
    assert OpenClipEncoder(spec, device="cpu").trim_text
