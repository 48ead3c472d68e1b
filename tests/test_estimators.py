"""One scikit-learn conformance test for every estimator: CoderClassifier, TipAdapter and
CoderAdapter. Not fitted -> NotFittedError; get_params / set_params / sklearn.base.clone; numpy
outputs of the right shapes; score with bad labels is a clear error."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import torch
from sklearn.base import clone

from coderclip.classifier import CoderClassifier
from coderclip.errors import ConfigError, NotFittedError
from coderclip.fewshot import CoderAdapter, TipAdapter

from .helpers import HashEncoder, random_knowledge

C, D, N = 6, 16, 40


@dataclasses.dataclass
class Case:
    make: Callable[[], object]          # an unfitted estimator
    fit: Callable[[object], object]     # fits it, returns what fit returned
    call: Callable[[object, str], object]   # estimator.<method>(test inputs)
    y: np.ndarray                       # labels of the test inputs (indices)
    heavy: str                          # a parameter that clone must share, not copy


def _unit(n, seed):
    return torch.nn.functional.normalize(torch.randn(n, D, generator=torch.Generator().manual_seed(seed)), dim=1)


X_TEST = _unit(N, 1)
Y_TEST = np.arange(N) % C


def _classifier_case() -> Case:
    kn, enc = random_knowledge(C, seed=2, contrast_neighbours=3), HashEncoder(D)
    return Case(make=lambda: CoderClassifier(enc, kn, tau=1.0),
                fit=lambda est: est.fit(),
                call=lambda est, m: getattr(est, m)(embeddings=X_TEST),
                y=Y_TEST, heavy="encoder")


def _adapter_case(cls) -> Case:
    w = _unit(C, 3)
    extra = (_unit(12, 4),) if cls is CoderAdapter else ()
    support, labels = _unit(3 * C, 5), np.arange(3 * C) % C
    val, val_labels = _unit(2 * C, 6), np.arange(2 * C) % C
    return Case(make=lambda: cls(w, *extra, key_dtype="float32"),
                fit=lambda est: est.fit(support, labels, val, val_labels),
                call=lambda est, m: getattr(est, m)(X_TEST),
                y=Y_TEST, heavy="zero_shot_weights")


CASES = {"CoderClassifier": _classifier_case, "TipAdapter": lambda: _adapter_case(TipAdapter),
         "CoderAdapter": lambda: _adapter_case(CoderAdapter)}


@pytest.fixture(params=list(CASES))
def case(request) -> Case:
    return CASES[request.param]()


def test_not_fitted_is_an_error(case):
    est = case.make()
    for method in ("predict", "predict_proba", "decision_function"):
        with pytest.raises(NotFittedError):
            case.call(est, method)
    with pytest.raises(NotFittedError):
        est.score(*((X_TEST, case.y) if not isinstance(est, CoderClassifier) else ()),
                  **({"embeddings": X_TEST, "y": case.y} if isinstance(est, CoderClassifier) else {}))
    assert not hasattr(est, "classes_")


def test_params_and_clone(case):
    est = case.make()
    params = est.get_params()
    assert case.heavy in params and params == est.get_params(deep=False)
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    assert twin.get_params().keys() == params.keys()
    assert twin.get_params()[case.heavy] is params[case.heavy]     # shared, not deep-copied
    key = "tau" if "tau" in params else "alpha"
    assert est.set_params(**{key: 0.25}) is est and est.get_params()[key] == 0.25
    with pytest.raises(ConfigError, match="no parameter"):
        est.set_params(colour="blue")
    fitted = case.fit(est)
    assert fitted is est
    assert not hasattr(clone(est), "classes_")                      # clones are unfitted


def test_outputs_are_numpy_with_the_right_shapes(case):
    est = case.make()
    case.fit(est)
    n_classes = len(est.classes_)
    assert n_classes == C
    pred = case.call(est, "predict")
    proba = case.call(est, "predict_proba")
    dec = case.call(est, "decision_function")
    for out in (pred, proba, dec):
        assert isinstance(out, np.ndarray)
    assert pred.shape == (N,)
    assert proba.shape == dec.shape == (N, C) and proba.dtype == dec.dtype == np.float32
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    if isinstance(est, CoderClassifier):   # the rerank reorders probabilities, not stage-1 scores
        assert (est.classes_[proba.argmax(1)] == pred).all()
    else:
        assert (proba.argmax(1) == dec.argmax(1)).all()
    if isinstance(est, CoderClassifier):
        assert set(pred) <= set(est.classes_)
        s = est.score(embeddings=X_TEST, y=case.y)
        with pytest.raises(ConfigError, match="does not know"):
            est.score(embeddings=X_TEST, y=["not a class"] * N)
    else:
        assert pred.dtype == np.int64 and (pred == dec.argmax(1)).all()
        s = est.score(X_TEST, case.y)
        with pytest.raises(ConfigError):
            est.score(X_TEST, case.y[:-1])
    assert isinstance(s, float) and 0.0 <= s <= 1.0


def test_one_string_is_one_text_and_one_image_is_one_image():
    from PIL import Image

    enc = HashEncoder(D)
    one = enc.encode_texts("a dog")
    assert one.shape == (1, D)
    assert torch.allclose(one, enc.encode_texts(["a dog"]))
    assert enc.encode_images(Image.new("RGB", (8, 8), (10, 20, 30))).shape == (1, D)
