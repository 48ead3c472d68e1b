"""The testbed model: encoder interface, weights files, the frozen text tower, and a reduced
retraining from scratch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from coderclip.errors import ModelLoadError
from coderclip.testbed import classes as tc
from coderclip.testbed.model import (DEFAULT_WEIGHTS, ImageTower, MiniLMTextTower, embed_texts,
                                     load_image_tower, save_image_tower)


@pytest.fixture(scope="module")
def encoder():
    from coderclip.encoders import load_encoder

    return load_encoder("testbed", device="cpu")


def test_shipped_weights_are_small_and_documented():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 16e6
    record = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    for key in ("command", "seed", "train_images", "distinct_captions", "final_loss", "test_accuracy"):
        assert key in record
    assert record["command"].startswith("python -m coderclip.testbed.train")
    assert record["final_loss"] < record["first_loss"]
    assert record["parameters"] < 5_000_000


def test_encoder_interface(encoder):
    assert encoder.embed_dim == 384
    assert "testbed|sha256:" in encoder.identity
    img = Image.fromarray(tc.render_test_image(0, 0))
    a = encoder.encode_images([img, img.resize((100, 100))])
    assert a.shape == (2, 384) and a.dtype == torch.float32
    assert torch.allclose(a.norm(dim=1), torch.ones(2), atol=1e-5)
    t = encoder.encode_texts(["a small green circle", "a red octagon with white lettering", "x"])
    assert t.shape == (3, 384)
    assert torch.allclose(t.norm(dim=1), torch.ones(3), atol=1e-5)
    # the order of texts in a call does not change their embeddings (length-sorted batching)
    t2 = encoder.encode_texts(["x", "a red octagon with white lettering"])
    assert torch.allclose(t2[1], t[1], atol=1e-5)


def test_identity_follows_the_weights(tmp_path, encoder):
    from coderclip.encoders import load_encoder

    torch.manual_seed(0)
    path = save_image_tower(ImageTower(width=4), tmp_path / "tiny.safetensors")
    other = load_encoder(f"testbed:{path}", device="cpu")
    assert other.identity != encoder.identity
    assert other.embed_dim == 384


def test_text_tower_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    from coderclip.testbed.model import minilm_path

    texts = ["a photo of a lime, which has a bright green peel.", "three blue squares on sand", "a"]
    ours = embed_texts(MiniLMTextTower(), texts)
    ref = st.SentenceTransformer(str(minilm_path()), device="cpu").encode(
        texts, convert_to_tensor=True, normalize_embeddings=True)
    assert torch.allclose(ours, ref.float().cpu(), atol=1e-4)


def test_weights_file_roundtrip_and_errors(tmp_path):
    torch.manual_seed(1)
    model = ImageTower(width=4).eval()
    path = save_image_tower(model, tmp_path / "w.safetensors", metadata={"note": "test"})
    back = load_image_tower(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), back(x))
    with pytest.raises(ModelLoadError, match="do not exist"):
        load_image_tower(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_image_tower(bad)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ModelLoadError, match="not a coderclip testbed image tower"):
        load_image_tower(other)


@pytest.mark.slow
def test_reduced_retraining_lowers_the_loss_and_beats_chance():
    """A scaled-down run of the real training recipe, from scratch."""
    from coderclip.testbed.train import (description_prototypes, image_embeddings, render_training_set,
                                         train_image_tower)

    torch.manual_seed(0)
    images, captions = render_training_set(seed=123, scenes=1024, renders=1, workers=2)
    text = MiniLMTextTower()
    distinct = sorted(set(captions))
    emb = embed_texts(text, distinct)
    index = np.array([distinct.index(c) for c in captions]).reshape(-1, 1)
    model, hist = train_image_tower(images, emb, index, width=12, epochs=8, batch_size=128, lr=3e-3,
                                    seed=0, log=lambda m: None, log_every=8)
    losses = [h["loss"] for h in hist["loss"]]
    assert losses[-1] < 0.85 * losses[0], losses
    # zero-shot on a few visually distinct test classes, with the world's own descriptions
    picked = [tc.CLASS_NAMES.index(n) for n in
              ("watermelon", "stop sign", "flag of Ukraine", "Earth", "sun", "chessboard")]
    test_images, labels = tc.make_test_set(per_class=10, classes=picked)
    x = image_embeddings(model, test_images)
    protos = description_prototypes(text, per_class=4, class_indices=picked)
    y = torch.tensor([picked.index(int(v)) for v in labels])
    acc = float(((x @ protos.T).argmax(1) == y).float().mean())
    assert acc > 1.5 / len(picked), acc  # chance is 1/6


def _head_inputs(text, texts, head):
    from coderclip.testbed.train import tokenize_for_head

    return tokenize_for_head(text, texts, head.config["max_tokens"])


def test_text_head_starts_neutral_and_can_learn_word_order():
    """MiniLM alone barely separates colour orders; the trainable head learns to."""
    import torch.nn.functional as F

    from coderclip.testbed.model import TextHead, attach_word_embeddings, combine_text

    text = MiniLMTextTower()
    texts = ["horizontal bands of white, blue and red", "horizontal bands of red, white and blue"]
    e = embed_texts(text, texts)
    assert float(e[0] @ e[1]) > 0.98
    torch.manual_seed(0)
    head = attach_word_embeddings(TextHead(width=32, layers=1, heads=2), text)
    ids, mask = _head_inputs(text, texts, head)
    with torch.no_grad():
        assert torch.allclose(combine_text(e, head(ids, mask)), e, atol=1e-6)  # zero-initialised output
    target = F.normalize(torch.randn(2, 384), dim=1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(60):
        out = F.normalize(combine_text(e, head(ids, mask)), dim=1)
        loss = -(out * target).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = F.normalize(combine_text(e, head(ids, mask)), dim=1)
    assert float(out[0] @ out[1]) < 0.9


def test_weights_with_text_head_roundtrip_through_the_encoder(tmp_path):
    from coderclip.encoders import load_encoder
    from coderclip.testbed.model import TextHead, load_testbed_weights

    torch.manual_seed(2)
    model, head = ImageTower(width=4).eval(), TextHead(width=16, layers=1, heads=2).eval()
    torch.nn.init.normal_(head.out.weight, std=0.05)  # a non-trivial head
    path = save_image_tower(model, tmp_path / "w2.safetensors", text_head=head, half=True)
    back, back_head = load_testbed_weights(path)
    assert back_head is not None and back_head.config == head.config
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), back(x), atol=2e-2)  # stored as fp16
    enc = load_encoder(f"testbed:{path}", device="cpu")
    texts = ["a small green circle", "a red octagon with white lettering"]
    with_head = enc.encode_texts(texts)
    plain = embed_texts(enc.text_tower, texts)
    assert torch.allclose(with_head.norm(dim=1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(with_head, plain, atol=1e-3)  # the head changes the text side
    assert load_image_tower(path).config == model.config
