"""Real backends: tiny random models saved to disk and loaded through the user's code path;
clear, fast failures when weights are missing and the hub cannot be reached."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from coderclip.encoders import load_encoder
from coderclip.encoders.precomputed import PrecomputedEncoder
from coderclip.errors import ConfigError, InputError, ModelLoadError
from coderclip.features import FeatureSet, load_features, save_features

from .conftest import TINY_ARCH

IMG = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))


def check_encoder(enc, dim):
    t = enc.encode_texts(["a photo of a dog.", "a photo of a cat with long whiskers.", "x"])
    i = enc.encode_images([IMG, IMG.convert("L").convert("RGB")])
    assert t.shape == (3, dim) and i.shape == (2, dim)
    assert t.dtype == i.dtype == torch.float32
    assert torch.allclose(t.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(i.norm(dim=1), torch.ones(2), atol=1e-5)
    # batch size and order do not change the embeddings
    single = torch.cat([enc.encode_texts([s]) for s in ["x", "a photo of a dog."]])
    assert torch.allclose(single, t[[2, 0]], atol=1e-5)
    pre = torch.stack([enc.preprocess(IMG)])
    assert torch.allclose(enc.encode_images(pre), i[:1], atol=1e-5)


def test_open_clip_local_folder(open_clip_spec):
    enc = load_encoder(open_clip_spec, device="cpu")
    check_encoder(enc, 32)
    assert enc.identity.startswith("open_clip|local-dir|sha256:")


def test_open_clip_architecture_with_checkpoint_file(open_clip_dir, open_clip_spec):
    enc = load_encoder(f"open_clip:{TINY_ARCH}:{open_clip_dir / 'tiny.pt'}", device="cpu")
    check_encoder(enc, 32)
    same = load_encoder(open_clip_spec, device="cpu")
    texts = ["a photo of a red apple."]
    assert torch.allclose(enc.encode_texts(texts), same.encode_texts(texts), atol=1e-6)


def test_open_clip_bf16_precision(open_clip_spec):
    enc = load_encoder(open_clip_spec, device="cpu", precision="bf16")
    assert enc.dtype == torch.bfloat16 and "bf16" in enc.identity
    ref = load_encoder(open_clip_spec, device="cpu")
    a, b = enc.encode_texts(["a cat"]), ref.encode_texts(["a cat"])
    assert a.dtype == torch.float32 and float(a[0] @ b[0]) > 0.98


def test_hf_clip_folder(hf_clip_dir):
    enc = load_encoder(f"hf:{hf_clip_dir}", device="cpu")
    check_encoder(enc, 24)
    assert enc.identity.startswith("hf|sha256:")


def test_hf_siglip_folder_pads_to_fixed_length(hf_siglip_dir):
    enc = load_encoder(f"hf:{hf_siglip_dir}", device="cpu")
    assert enc.fixed_length and enc.context_length == 16
    check_encoder(enc, 32)


def test_precomputed_features_round_trip(tmp_path, open_clip_encoder):
    emb = torch.randn(5, 32)
    fs = FeatureSet(emb, labels=torch.tensor([0, 1, 1, 0, 2]), ids=list("abcde"),
                    class_names=["x", "y", "z"], model=open_clip_encoder.identity)
    path = save_features(tmp_path / "f.safetensors", fs)
    back = load_features(path)
    assert torch.allclose(back.embeddings, torch.nn.functional.normalize(emb, dim=1), atol=1e-6)
    assert back.labels.tolist() == [0, 1, 1, 0, 2] and back.ids == list("abcde")
    enc = PrecomputedEncoder(back, open_clip_encoder)
    assert torch.allclose(enc.encode_images(["c", "a"]), back.embeddings[[2, 0]])
    assert torch.allclose(enc.encode_texts(["hi"]), open_clip_encoder.encode_texts(["hi"]))
    np.save(tmp_path / "f.npy", emb.numpy())
    assert load_features(tmp_path / "f.npy").embeddings.shape == (5, 32)
    with pytest.raises(ConfigError, match="64-d but the text model"):
        PrecomputedEncoder(FeatureSet(torch.randn(2, 64)), open_clip_encoder)
    with pytest.raises(ConfigError, match="not in the features file"):
        enc.encode_images(["zz"])


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot read features file"):
        load_features(tmp_path / "obj.npy")


@pytest.mark.parametrize("spec, message", [
    ("open_clip:ViT-B-32:openai", "cannot be reached"),
    ("open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "cannot be reached"),
    ("hf:openai/clip-vit-base-patch32", "not in the local Hugging Face cache"),
])
def test_missing_weights_fail_fast_with_a_clear_message(spec, message, monkeypatch):
    # a closed local port: the probe fails at once (an unroutable host would take the 3 s timeout)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as e:
        load_encoder(spec, device="cpu")
    assert time.monotonic() - start < 30  # generous: never the minute of retries
    assert message in str(e.value)
    assert "local" in str(e.value)  # says how to pass a local checkpoint


def test_bad_specs():
    with pytest.raises(ConfigError, match="unknown model spec"):
        load_encoder("clip:ViT-B-32")
    with pytest.raises(ModelLoadError, match="unknown open_clip architecture"):
        load_encoder("open_clip:ViT-Z-99:openai")
    with pytest.raises(ModelLoadError, match="no pretrained tag 'nope'"):
        load_encoder("open_clip:ViT-B-32:nope")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder("open_clip:ViT-B-32:/no/such/ckpt.pt")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder("hf:/no/such/folder")
    with pytest.raises(ConfigError, match="invalid precision"):
        load_encoder("open_clip:ViT-B-32:/x.pt", precision="fp8")


def test_hf_folder_that_is_not_a_dual_encoder(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, vocab_size=100)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError):
        load_encoder(f"hf:{tmp_path}", device="cpu")


def test_texts_are_encoded_longest_first_and_returned_in_input_order():
    from coderclip.encoders.base import Encoder

    class Recording(Encoder):
        name = identity = "recording"
        embed_dim, device, dtype = 2, torch.device("cpu"), torch.float32
        batches: list[list[str]] = []

        def _encode_image_batch(self, pixels):
            raise NotImplementedError

        def _encode_text_batch(self, texts):
            self.batches.append(list(texts))
            return torch.tensor([[float(len(t)), 1.0] for t in texts])

    enc = Recording()
    texts = ["aa", "a", "aaaa", "aaa", "aaaaa"]
    out = enc.encode_texts(texts, batch_size=2)
    assert enc.batches == [["aaaaa", "aaaa"], ["aaa", "aa"], ["a"]]
    expected = torch.nn.functional.normalize(torch.tensor([[len(t), 1.0] for t in texts]), dim=-1)
    assert torch.allclose(out, expected)
