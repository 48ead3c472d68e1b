"""The scikit-learn estimator protocol without depending on scikit-learn: ``get_params`` /
``set_params`` read the ``__init__`` signature, ``__sklearn_clone__`` makes ``sklearn.base.clone``
share heavy parameters (a loaded encoder) instead of deep-copying them, and
:func:`check_is_fitted` raises :class:`~coderclip.errors.NotFittedError`."""

from __future__ import annotations

import inspect
from typing import Any

from .errors import ConfigError, NotFittedError


class EstimatorMixin:
    """Settings are the ``__init__`` arguments, stored under their own names; learned state ends in
    ``_`` and is set by ``fit``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:       # subclasses may add arguments and pass the rest on
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) \
                        and p.name not in names:
                    names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments as given (``deep`` is accepted for scikit-learn; no
        parameter here is itself an estimator)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        """Change constructor arguments; a fitted object must be fitted again to use them."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigError(f"{type(self).__name__} has no parameter {name!r}; "
                                  f"valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __sklearn_clone__(self):
        """An unfitted copy with the same parameters (the encoder and weights are shared, not
        copied: they are read-only for an estimator)."""
        return type(self)(**self.get_params())


def check_is_fitted(estimator: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``fit`` has set ``attribute``."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; call fit before "
                             "using it")
