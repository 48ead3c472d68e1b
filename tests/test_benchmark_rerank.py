"""The rerank report on a constructed case whose answer is known, through the whole benchmark
(CSV dataset -> feature cache -> predictions -> labels -> report)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coderclip.evaluation.suite import BenchmarkDataset, run_benchmark
from coderclip.reports.benchmark import benchmark_markdown
from coderclip.encoders.base import Encoder
from coderclip.knowledge import ClassKnowledge, Knowledge

from .helpers import CountingImages, Killed

# Orthonormal directions: one per class name, one per one-vs-one cue.
ALPHA, BETA, GAMMA, CUE_ALPHA, CUE_BETA = range(5)
DIM = 8


def unit(*parts: tuple[int, float]) -> torch.Tensor:
    v = torch.zeros(DIM)
    for i, w in parts:
        v[i] += w
    return v / v.norm()


# image -> (embedding, true label). Stage 1 sees only the class-name directions; alpha narrowly
# beats beta in the close cases (gap ≈ 0.33 < τ = 0.5), and the cue directions decide the rerank.
CLOSE = [(ALPHA, 1.0), (BETA, 0.99)]
IMAGES = [
    (unit(*CLOSE, (CUE_BETA, 0.5)), BETA),    # reranked, alpha -> beta: wrong -> right
    (unit(*CLOSE, (CUE_BETA, 0.5)), ALPHA),   # reranked, alpha -> beta: right -> wrong
    (unit((ALPHA, 1.0)), ALPHA),               # confident: not reranked, right
    (unit(*CLOSE, (CUE_ALPHA, 0.5)), ALPHA),  # reranked, stays alpha: unchanged, right
    (unit(*CLOSE, (CUE_BETA, 0.5)), GAMMA),   # reranked, alpha -> beta: wrong -> wrong
    (unit((GAMMA, 1.0)), GAMMA),               # confident: not reranked, right
    (unit(*CLOSE, (CUE_BETA, 0.6)), BETA),    # reranked, alpha -> beta: wrong -> right
]
NAMES = ["alpha", "beta", "gamma"]


class DesignedEncoder(Encoder):
    """Texts map to the direction of the first keyword they contain (cues before class names);
    an image file holds its row number in its first pixel and maps to ``IMAGES[row]``."""

    def __init__(self):
        self.embed_dim, self.device, self.dtype = DIM, torch.device("cpu"), torch.float32
        self.identity, self.name = "designed-rerank-case-1", "designed"

    def preprocess(self, image):
        return torch.tensor([float(np.asarray(image)[0, 0, 0])])

    def _encode_text_batch(self, texts):
        order = [("alphacue", CUE_ALPHA), ("betacue", CUE_BETA), ("gamma", GAMMA), ("beta", BETA),
                 ("alpha", ALPHA)]
        return torch.stack([unit((next(d for k, d in order if k in t), 1.0)) for t in texts])

    def _encode_image_batch(self, pixels):
        return torch.stack([IMAGES[int(p[0])][0] for p in pixels])


@pytest.fixture
def designed_case(tmp_path):
    from PIL import Image

    rows = ["path,label"]
    for i, (_, label) in enumerate(IMAGES):
        Image.new("RGB", (2, 2), (i, 0, 0)).save(tmp_path / f"img{i}.png")
        rows.append(f"img{i}.png,{NAMES[label]}")
    (tmp_path / "case.csv").write_text("\n".join(rows) + "\n")
    kn = Knowledge([ClassKnowledge("alpha", contrasts={"beta": ["alphacue"]}),
                    ClassKnowledge("beta", contrasts={"alpha": ["betacue"]}),
                    ClassKnowledge("gamma")], domain="generic", name="designed")
    kn.save(tmp_path / "designed.json")
    return tmp_path


def test_rerank_counts_match_the_constructed_answer(designed_case):
    report = run_benchmark(
        [BenchmarkDataset("csv", str(designed_case / "case.csv"), str(designed_case / "designed.json"))],
        ["designed"], tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2, 3),
        encoders={"designed": DesignedEncoder()})
    run = report["runs"][0]
    assert run["n_images"] == 7
    rr = run["rerank"]
    assert (rr["tau"], rr["top_k"]) == (0.5, 2)
    assert (rr["reranked"], rr["changed"]) == (5, 4)
    assert (rr["wrong_to_right"], rr["right_to_wrong"], rr["wrong_to_wrong"]) == (2, 1, 1)
    # stage 1 gets images 1, 2, 3, 5 right (4/7); after the rerank 0, 2, 3, 5, 6 (5/7)
    assert run["methods"]["clip"]["top1"] == pytest.approx(400 / 7)
    assert run["methods"]["coder"]["top1"] == pytest.approx(400 / 7)
    assert run["methods"]["coder-rerank"]["top1"] == pytest.approx(500 / 7)
    assert [s["top1"] for s in rr["tau_sweep"]] == pytest.approx([400 / 7, 500 / 7, 500 / 7])
    assert run["ablation"]["+rerank"] == pytest.approx(500 / 7)
    # K = 3 adds gamma, which has no one-vs-one texts: its pairs count 0 and the winner is unchanged
    assert [s["top1"] for s in rr["k_sweep"]] == pytest.approx([500 / 7, 500 / 7])
    per_class = {p["class"]: p for p in run["per_class"]}
    assert per_class["beta"]["coder-rerank"] == 100.0 and per_class["beta"]["coder"] == 0.0
    assert per_class["gamma"]["images"] == 2 and per_class["gamma"]["coder-rerank"] == 50.0
    pairs = {(p["true"], p["predicted"]): p["count"] for p in run["confused_pairs"]}
    assert pairs == {("alpha", "beta"): 1, ("gamma", "beta"): 1}
    md = benchmark_markdown(report)
    assert "| case | `designed` | 0.5 (fixed) | 2 (fixed) | 5 | 4 | 2 | 1 | 1 |" in md


def test_tau_chosen_on_val_is_applied_to_test(designed_case):
    """With the val split's labels, τ = 0 (no rerank) wins on a val set where every rerank hurts."""
    import shutil

    folder = designed_case / "splits"
    folder.mkdir()
    lines = (designed_case / "case.csv").read_text().splitlines()
    for name in ("val", "test"):
        shutil.copy(designed_case / "case.csv", folder / f"{name}.csv")
    for i in range(7):
        shutil.copy(designed_case / f"img{i}.png", folder / f"img{i}.png")
    # val: the images labelled with their stage-1 class (but the confident img2 as beta), so
    # every rerank loses accuracy there
    val = {2: "beta", 5: "gamma"}
    (folder / "val.csv").write_text("\n".join([lines[0]] + [f"img{i}.png,{val.get(i, 'alpha')}"
                                                            for i in range(7)]) + "\n")
    report = run_benchmark(
        [BenchmarkDataset("csv", str(folder), str(designed_case / "designed.json"))],
        ["designed"], tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2,), tau_from="val", k_from="fixed",
        encoders={"designed": DesignedEncoder()})
    run = report["runs"][0]
    p = run["protocol"]
    assert (p["tau"], p["tau_source"], p["top_k_source"]) == (0.0, "val", "fixed")
    sel = p["selection"]
    assert sel["split"] == "val" and sel["images"] == 7
    assert [(g["tau"], round(g["top1"], 2)) for g in sel["grid"]] == [
        (0.0, round(600 / 7, 2)), (0.5, round(200 / 7, 2)), (1.0, round(200 / 7, 2))]
    assert run["rerank"]["reranked"] == 0 and run["rerank"]["tau"] == 0.0
    assert run["methods"]["coder-rerank"]["top1"] == pytest.approx(400 / 7)
    assert report["settings"]["tau_from"] == "val"


def test_val_split_with_other_classes_is_refused(designed_case):
    folder = designed_case / "splits"
    folder.mkdir()
    (folder / "test.csv").write_text((designed_case / "case.csv").read_text().replace("img", "../img"))
    (folder / "val.csv").write_text("path,label\n../img0.png,alpha\n../img1.png,gamma\n")
    from coderclip.errors import DatasetError

    with pytest.raises(DatasetError, match="val split has other classes"):
        run_benchmark([BenchmarkDataset("csv", str(folder), str(designed_case / "designed.json"))],
                      ["designed"], tau_from="val", encoders={"designed": DesignedEncoder()})


def test_tau_and_k_come_from_val_by_default_where_there_is_a_val_split(designed_case):
    """The default protocol: the val split chooses τ and K when the dataset has one; a single
    manifest (no val split) keeps the fixed values, and each run says which."""
    import shutil

    folder = designed_case / "splits"
    folder.mkdir()
    for name in ("val", "test"):
        shutil.copy(designed_case / "case.csv", folder / f"{name}.csv")
    for i in range(7):
        shutil.copy(designed_case / f"img{i}.png", folder / f"img{i}.png")
    kfile = str(designed_case / "designed.json")
    report = run_benchmark(
        [BenchmarkDataset("csv", str(folder), kfile), BenchmarkDataset("csv", str(designed_case / "case.csv"), kfile)],
        ["designed"], tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2, 3), encoders={"designed": DesignedEncoder()})
    with_val, without = (r["protocol"] for r in report["runs"])
    assert (with_val["tau_source"], with_val["top_k_source"]) == ("val", "val")
    assert with_val["selection"]["images"] == 7 and len(with_val["selection"]["grid"]) == 6
    assert (without["tau"], without["tau_source"], without["top_k"], without["top_k_source"]) == (0.5, "fixed", 2, "fixed")
    assert without["selection"] is None
    assert report["settings"]["tau_from"] == "auto"
    assert "post-hoc" in benchmark_markdown(report)


def test_evaluate_with_val_images_chooses_tau_and_k_on_them(designed_case):
    """``evaluate(..., val_dataset=)`` (the CLI's ``--val``): τ/K come from the validation images."""
    from coderclip.datasets import open_dataset
    from coderclip.evaluation.run import evaluate
    from coderclip.knowledge import load_knowledge

    kn = load_knowledge(str(designed_case / "designed.json"))
    test = open_dataset(designed_case / "case.csv", class_names=NAMES)
    rows = (designed_case / "case.csv").read_text().splitlines()
    val_labels = {2: "beta", 5: "gamma"}  # every rerank loses accuracy on these labels
    (designed_case / "val.csv").write_text("\n".join(
        [rows[0]] + [f"img{i}.png,{val_labels.get(i, 'alpha')}" for i in range(7)]) + "\n")
    val = open_dataset(designed_case / "val.csv", class_names=NAMES)
    enc = DesignedEncoder()
    fixed = evaluate(enc, kn, test, tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2,), cache=False, num_workers=0)
    assert fixed["protocol"]["tau_source"] == "fixed" and fixed["rerank"]["tau"] == 0.5
    chosen = evaluate(enc, kn, test, tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2,), cache=False,
                      num_workers=0, val_dataset=val)
    p = chosen["protocol"]
    assert (p["tau"], p["tau_source"], p["top_k_source"]) == (0.0, "val", "val")
    assert p["selection"]["images"] == 7
    assert chosen["rerank"]["reranked"] == 0
    assert chosen["provenance"]["labels_read_after_predictions"] is True
    # with the cache on, the validation images are embedded once, like the test images
    counting = DyingEncoder()
    first = evaluate(counting, kn, test, tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2,), num_workers=0,
                     val_dataset=val)
    calls = counting.image_calls
    again = evaluate(counting, kn, test, tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2,), num_workers=0,
                     val_dataset=val)
    assert calls > 0 and counting.image_calls == calls
    assert again["protocol"] == first["protocol"] == p


class DyingEncoder(CountingImages, DesignedEncoder):
    """The designed encoder, counting the images it embeds, killed past ``fail_after``."""


def test_benchmark_streams_the_test_split_and_a_killed_run_resumes(designed_case, monkeypatch):
    """The test split reaches the predictor a shard at a time, never whole; a run killed while
    embedding it keeps its finished shards and the next run embeds only the rest."""
    from coderclip import feature_cache
    from coderclip.evaluation import suite

    monkeypatch.setattr(feature_cache, "SHARD_IMAGES", 2)
    real, batches = suite.predict_then_label, []

    def spy(x, *a, **kw):
        assert not isinstance(x, torch.Tensor)

        def watched():
            for xb in x:
                batches.append(len(xb))
                yield xb
        return real(watched(), *a, **kw)

    monkeypatch.setattr(suite, "predict_then_label", spy)
    spec = [BenchmarkDataset("csv", str(designed_case / "case.csv"), str(designed_case / "designed.json"))]

    def bench(encoder, **kw):
        return run_benchmark(spec, ["designed"], tau=0.5, top_k=2, taus=(0.0, 0.5, 1.0), ks=(2,),
                             batch_size=1, num_workers=0, encoders={"designed": encoder}, **kw)["runs"][0]

    reference = bench(DesignedEncoder(), cache=False)
    assert max(batches) == 1 and sum(batches) == 7
    with pytest.raises(Killed):   # images 0 to 2 embedded: shard [0 1] finished
        bench(DyingEncoder(fail_after=3))
    resumed, batches[:] = DyingEncoder(), []
    run = bench(resumed)
    assert resumed.image_calls == 5 and not run["features"]["cache_hit"]
    assert batches == [2, 1, 1, 1, 1, 1]   # shard 0 read whole, the rest as the encoder gives it
    for part in ("n_images", "methods", "rerank", "per_class", "skipped_images"):
        assert run[part] == reference[part], part
    assert run["provenance"]["labels_read_after_predictions"] is True
    again, batches[:] = DyingEncoder(), []
    run = bench(again)
    assert again.image_calls == 0 and run["features"]["cache_hit"] and batches == [2, 2, 2, 1]
    assert run["methods"] == reference["methods"]
