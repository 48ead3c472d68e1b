"""The HTTP API in-process (FastAPI's TestClient over the real ASGI app and a real tiny open_clip
model): every endpoint, answers equal to the Python API's, and every kind of bad input."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from coderclip.errors import ConfigError
from coderclip.images import load_image
from coderclip.serve import api_key_from_env, is_local
from coderclip.serve.app import create_app

KEY = "k" * 20 + "-test-key"


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def keyed(service):
    with TestClient(create_app(service, api_key=KEY)) as c:
        yield c


def _png_bytes(path) -> bytes:
    buf = io.BytesIO()
    load_image(path).save(buf, format="PNG")
    return buf.getvalue()


def _bomb(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` 1-bit pixels: a few hundred bytes on the wire."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * 64)            # the first rows only: never decoded anyway
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------- endpoints
def test_healthz_model_classes_and_openapi(client, service):
    assert client.get("/healthz").json() == {"status": "ok", "queued_images": 0}
    info = client.get("/v1/model").json()
    assert info["model"]["identity"] == service.encoder.identity
    assert info["knowledge"] == {"name": "citrus", "domain": "food", "classes": 3,
                                 "sha256": service.classifiers["coder"].bank_.knowledge_digest}
    assert set(info["versions"]) >= {"coderclip", "torch", "open_clip", "transformers", "python"}
    assert sorted(info["methods"]) == ["clip", "clip-ensemble", "coder", "coder-rerank"]
    assert info["default_method"] == "coder-rerank"
    assert client.get("/v1/classes").json() == {"count": 3, "classes": ["lime", "lemon", "orange"]}
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"/healthz", "/v1/model", "/v1/classes", "/v1/stats"} <= set(spec["paths"])


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200
        assert "http://" not in r.text and "https://" not in r.text, f"{asset} refers outside"
    assert "http://" not in page.text and "https://" not in page.text


@pytest.mark.parametrize("method", ["coder-rerank", "coder", "clip", "clip-ensemble"])
def test_multipart_answer_equals_python_api(client, service, image_files, method):
    paths = [image_files["jpeg"], image_files["gray"]]
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    r = client.post("/v1/classify", files=files, data={"top_k": "2", "method": method})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["method"] == method
    clf = service.classifiers[method]
    idx, prob = clf.top_k(paths, k=2)
    for res, p, ci, pi in zip(out["results"], paths, idx, prob):
        assert res["image"] == p.name
        assert [q["label"] for q in res["predictions"]] == [clf.classes_[c] for c in ci]
        assert [q["score"] for q in res["predictions"]] == pytest.approx(pi.tolist(), abs=1e-5)
        assert res["label"] == res["predictions"][0]["label"] and "explanation" not in res
        assert res["stage1_label"] in clf.classes_ and isinstance(res["rerank_applied"], bool)
        assert res["reranked"] == (res["label"] != res["stage1_label"])
        assert res["reranked"] == (len(pi) > 1 and pi[0] < max(pi)), "as classify's rows say"


def test_json_base64_with_explanation_equals_python_api(client, service, image_files):
    raw = _png_bytes(image_files["rgba"])
    body = {"images": [base64.b64encode(raw).decode(), "data:image/png;base64," + base64.b64encode(raw).decode()],
            "top_k": 3, "explain": True, "names": ["a.png", "b.png"]}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["image"] for x in res] == ["a.png", "b.png"]
    want = service.classifiers["coder-rerank"].explain([load_image(image_files["rgba"])], k=3)[0]
    for x in res:
        assert x["label"] == want["label"] and x["stage1_label"] == want["stage1_label"]
        assert [e["text"] for e in x["explanation"]] == [e["text"] for e in want["explanation"]]
        assert all({"text", "type", "similarity", "contribution"} <= set(e) for e in x["explanation"])


def test_stats_count_batches(client):
    stats = client.get("/v1/stats").json()
    assert stats["served_requests"] >= 1 and sum(stats["batch_sizes"].values()) >= 1


# ---------------------------------------------------------------------------- bad input
def _error(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"status", "message"} and body["status"] == status
    assert "Traceback" not in r.text
    for w in words:
        assert w in body["message"], body["message"]
    return body["message"]


def test_not_an_image_and_empty_and_truncated(client, image_files):
    _error(client.post("/v1/classify", files=[("images", ("notes.jpg", b"just text", "image/jpeg"))]),
           400, "notes.jpg", "not an image")
    _error(client.post("/v1/classify", files=[("images", ("empty.png", b"", "image/png"))]), 400,
           "empty.png", "empty")
    cut = image_files["truncated"]
    _error(client.post("/v1/classify", files=[("images", (cut.name, cut.read_bytes(), "image/jpeg"))]),
           400, cut.name)
    _error(client.post("/v1/classify", data={"top_k": "1"}), 415, "form-urlencoded")
    _error(client.post("/v1/classify", files={"top_k": (None, "1")}), 400, "no images")


def test_oversized_body_and_too_many_images(client, image_files):
    big = b"\xff" * 300_000                         # the test app's limit is 200,000 bytes
    _error(client.post("/v1/classify", files=[("images", ("big.jpg", big, "image/jpeg"))]), 413,
           "larger than the limit")
    _error(client.post("/v1/classify", content=b"x" * 300_000, headers={"content-type": "application/json"}),
           413)
    png = _png_bytes(image_files["png"])
    files = [("images", (f"{i}.png", png, "image/png")) for i in range(5)]   # limit 4
    _error(client.post("/v1/classify", files=files), 413)
    _error(client.post("/v1/classify", json={"images": [base64.b64encode(png).decode()] * 5}), 413,
           "limit of 4")


def test_decompression_bomb_is_refused_before_decoding(client):
    bomb = _bomb(40_000, 40_000)                    # 1.6 billion pixels in under a kilobyte
    assert len(bomb) < 20_000
    _error(client.post("/v1/classify", files=[("images", ("bomb.png", bomb, "image/png"))]), 400,
           "bomb.png", "pixels", "limit")
    small_bomb = io.BytesIO()
    Image.new("L", (2000, 1000)).save(small_bomb, format="PNG")   # 2 MP > the test limit of 1 MP
    _error(client.post("/v1/classify", files=[("images", ("wide.png", small_bomb.getvalue(), "image/png"))]),
           400, "wide.png", "pixels")


@pytest.mark.parametrize("form, words", [
    ({"method": "dclip"}, ["unknown method", "dclip", "coder-rerank"]),
    ({"top_k": "0"}, ["top_k", "1 to 3"]),
    ({"top_k": "4"}, ["top_k", "1 to 3"]),
    ({"top_k": "two"}, ["top_k", "integer"]),
])
def test_bad_options_in_form(client, image_files, form, words):
    png = _png_bytes(image_files["png"])
    _error(client.post("/v1/classify", files=[("images", ("a.png", png, "image/png"))], data=form),
           400, *words)


@pytest.mark.parametrize("body, words", [
    ({"images": ["%%%not-base64"]}, ["images[0]", "base64"]),
    ({"images": "abc"}, ["images"]),
    ({"top_k": 2}, ["images"]),
    ({"images": ["aGk="], "top_k": -1}, ["top_k"]),
    ({"images": ["aGk="], "top_k": 1000}, ["top_k"]),
    ({"images": ["aGk="], "method": "nope"}, ["unknown method"]),
    ({"images": ["aGk="], "names": ["a", "b"]}, ["2 names for 1 images"]),
])
def test_bad_json(client, body, words):
    _error(client.post("/v1/classify", json=body), 400, *words)


def test_malformed_json_wrong_type_and_unknown_path(client):
    _error(client.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"}),
           400, "JSON")
    _error(client.post("/v1/classify", content=b"abc", headers={"content-type": "text/plain"}), 415,
           "text/plain")
    _error(client.get("/v1/nothing"), 404, "/v1/nothing")
    _error(client.get("/v1/classify"), 405)


def test_internal_errors_are_json_without_details(service, image_files, monkeypatch):
    def explode(jobs):
        raise RuntimeError("secret internal detail")

    app = create_app(service)
    with TestClient(app, raise_server_exceptions=False) as c:
        monkeypatch.setattr(app.app.state.batcher, "run_batch", explode)
        png = _png_bytes(image_files["png"])
        msg = _error(c.post("/v1/classify", files=[("images", ("a.png", png, "image/png"))]), 500)
        assert "secret" not in msg


def test_full_queue_answers_503_with_retry_after(service, image_files):
    png = _png_bytes(image_files["png"])
    with TestClient(create_app(service, max_queued=1)) as c:
        r = c.post("/v1/classify", files=[("images", (f"{i}.png", png, "image/png")) for i in range(2)])
        _error(r, 503, "busy")
        assert r.headers["retry-after"] == "1"
        assert c.get("/v1/stats").json()["rejected_requests"] == 1
        ok = c.post("/v1/classify", files=[("images", ("a.png", png, "image/png"))])
        assert ok.status_code == 200


# ---------------------------------------------------------------------------- API key
def test_api_key(keyed, image_files):
    assert keyed.get("/healthz").status_code == 200            # liveness needs no key
    _error(keyed.get("/v1/classes"), 401, "API key")
    _error(keyed.get("/v1/classes", headers={"Authorization": "Bearer wrong"}), 401)
    _error(keyed.get("/v1/model", headers={"X-API-Key": KEY[:-1]}), 401)
    assert keyed.get("/v1/classes", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.get("/v1/classes", headers={"X-API-Key": KEY}).status_code == 200
    png = _png_bytes(image_files["png"])
    r = keyed.post("/v1/classify", files=[("images", ("a.png", png, "image/png"))])
    _error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    r = keyed.post("/v1/classify", files=[("images", ("a.png", png, "image/png"))],
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200


def test_non_local_bind_needs_a_key(monkeypatch):
    monkeypatch.delenv("CODERCLIP_API_KEY", raising=False)
    assert is_local("127.0.0.1") and is_local("::1") and is_local("localhost")
    assert not is_local("0.0.0.0") and not is_local("192.168.1.5")
    assert api_key_from_env("127.0.0.1") is None
    with pytest.raises(ConfigError, match="CODERCLIP_API_KEY"):
        api_key_from_env("0.0.0.0")
    monkeypatch.setenv("CODERCLIP_API_KEY", "short")
    with pytest.raises(ConfigError, match="16"):
        api_key_from_env("0.0.0.0")
    monkeypatch.setenv("CODERCLIP_API_KEY", KEY)
    assert api_key_from_env("0.0.0.0") == KEY


def test_service_rejects_bad_configuration(open_clip_encoder):
    from coderclip.serve.service import ClassifierService

    from .conftest import citrus

    with pytest.raises(ConfigError, match="unknown method"):
        ClassifierService(open_clip_encoder, citrus(), methods=["coder", "magic"], cache=False)
    with pytest.raises(ConfigError, match="default method"):
        ClassifierService(open_clip_encoder, citrus(), methods=["clip"], cache=False)


def test_baselines_can_be_served_and_explained(open_clip_encoder, image_files):
    from coderclip.serve.service import ClassifierService

    from .conftest import citrus

    svc = ClassifierService(open_clip_encoder, citrus(), methods=["dclip", "waffle"],
                            default_method="dclip", cache=False)
    png = _png_bytes(image_files["png"])
    with TestClient(create_app(svc)) as c:
        assert c.get("/v1/model").json()["methods"] == ["dclip", "waffle"]
        for method in ("dclip", "waffle"):
            r = c.post("/v1/classify", files=[("images", ("a.png", png, "image/png"))],
                       data={"method": method, "explain": "true", "top_k": "3"})
            assert r.status_code == 200, r.text
            res = r.json()["results"][0]
            want = svc.classifiers[method].top_k([image_files["png"]], k=3)[0][0]
            assert [p["label"] for p in res["predictions"]] == [svc.classes[i] for i in want]
            assert res["explanation"] and not res["reranked"] and not res["rerank_applied"]
        _error(c.post("/v1/classify", files=[("images", ("a.png", png, "image/png"))],
                      data={"method": "coder"}), 400, "dclip, waffle")


def test_decoded_pixels_equal_the_cli_reader(service, image_files):
    """The service decodes bytes with the CLI's reader: same tensor as from the file path."""
    for kind in ("jpeg", "gray", "rgba"):
        p = image_files[kind]
        assert torch.equal(service.decode(p.read_bytes(), p.name), service.encoder.preprocess(load_image(p)))
