"""Decoding JPEG files on the model's device (run here on the CPU device: same code path, the
decoder is libjpeg instead of nvJPEG)."""

from __future__ import annotations

import logging

import torch

from coderclip.gpu_decode import decode_jpegs, device_preprocess_for
from coderclip.images import encode_image_files, find_images, load_image


def test_open_clip_preprocessing_has_a_device_equivalent(open_clip_encoder, sample_photos):
    pre = device_preprocess_for(open_clip_encoder.preprocess)
    assert pre is not None and pre.interpolation == "bicubic"
    path = [p for p in find_images([sample_photos]) if p.suffix == ".jpg"][0]
    cpu = open_clip_encoder.preprocess(load_image(path))
    (decoded,) = decode_jpegs([torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)],
                              torch.device("cpu"))
    dev = pre([decoded], torch.float32)[0]
    assert dev.shape == cpu.shape
    # different decoders and resamplers: close, not equal (normalised units, std ~0.27)
    assert float((dev - cpu).abs().mean()) < 0.05


def test_unknown_preprocessing_has_none():
    from torchvision import transforms as T

    assert device_preprocess_for(T.Compose([T.RandomResizedCrop(8), T.ToTensor()])) is None
    assert device_preprocess_for(lambda im: im) is None


def test_device_decode_embeds_like_cpu_decode_and_skips_the_same_files(image_files, open_clip_encoder,
                                                                        sample_photos):
    photos = [p for p in find_images([sample_photos]) if p.suffix == ".jpg"][:6]
    paths = [*photos, image_files["truncated"], image_files["png"], image_files["not_image"]]
    cpu = encode_image_files(open_clip_encoder, paths, batch_size=4, num_workers=0)
    dev = encode_image_files(open_clip_encoder, paths, batch_size=4, num_workers=0, decode="device")
    assert sorted(dev.kept) == sorted(cpu.kept) == [0, 1, 2, 3, 4, 5, 7]
    assert sorted(p for p, _ in dev.failures) == sorted(p for p, _ in cpu.failures)
    by_path = {i: e for i, e in zip(cpu.kept, cpu.embeddings)}
    cos = torch.stack([by_path[i] @ e for i, e in zip(dev.kept, dev.embeddings)])
    assert float(cos.min()) > 0.99


def test_device_decode_falls_back_when_preprocessing_is_unknown(image_files, open_clip_encoder,
                                                                 monkeypatch, caplog):
    from coderclip import images

    monkeypatch.setattr(images, "device_preprocess_for", lambda pre: None)
    with caplog.at_level(logging.WARNING):
        out = encode_image_files(open_clip_encoder, [image_files["jpeg"]], num_workers=0, decode="device")
    assert out.kept == [0] and "decoding on the CPU" in caplog.text


def test_jpegs_over_the_pixel_limit_take_the_pil_path(image_files, open_clip_encoder, monkeypatch):
    from coderclip import images

    monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, "100")  # the 50x40 test JPEG is over it
    item = images._ImageFiles([image_files["jpeg"]], open_clip_encoder.preprocess, raw_jpeg=True)[0]
    assert item[3] is None  # not handed to the device decoder as raw bytes
    monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, "100000")
    item = images._ImageFiles([image_files["jpeg"]], open_clip_encoder.preprocess, raw_jpeg=True)[0]
    assert item[3] is not None
