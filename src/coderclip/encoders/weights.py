"""Checkpoint weights with one copy in memory, every key checked.

A model is first built with its parameters on the ``meta`` device (no memory, no random
initialisation), the checkpoint is memory-mapped, and its tensors become the parameters
(``load_state_dict(assign=True)``) instead of being copied into a randomly initialised model.
Buffers are built for real: they are small, and many of them (causal masks, position ids) are
computed by the model's constructor rather than stored in checkpoints.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from itertools import chain
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError

_PATCH_LOCK = threading.Lock()
_SHOWN_KEYS = 5


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Inside this block every parameter a module registers is moved to the ``meta`` device, so
    initialisers run on shapes only. Buffers are untouched (see the module docstring).

    ``nn.Module.register_parameter`` is wrapped for the duration of the block (one block at a time
    in a process); modules that bypass it do not exist in torch or in the model libraries we load.
    """
    with _PATCH_LOCK:
        original = nn.Module.register_parameter

        def register(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
            if param is not None and not param.is_meta:
                param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
            original(self, name, param)

        nn.Module.register_parameter = register  # type: ignore[method-assign]
        try:
            yield
        finally:
            nn.Module.register_parameter = original  # type: ignore[method-assign]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``torch.save`` checkpoint, memory-mapped where the
    format allows (pages are read from disk when first used, and shared with the page cache).
    Unwraps ``{"state_dict": ...}`` and a ``module.`` prefix (checkpoints saved from
    ``DistributedDataParallel``)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:  # the legacy (pre-zip) torch.save format cannot be mapped
                if "mmap" not in str(e):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors, pickle and zip errors have no common base class
        raise ModelLoadError(f"could not read checkpoint {str(path)!r}: {_first_line(e)}") from e
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"checkpoint {str(path)!r} is not a plain mapping of names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def assign_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Make ``state``'s tensors the parameters and persistent buffers of ``model`` (no copy where
    the dtype already matches; otherwise cast to the dtype the model was built with), after
    checking that the checkpoint holds exactly the keys the architecture expects.

    Raises :class:`ModelLoadError` naming ``source`` when keys are missing or unexpected, when a
    shape differs, or when any tensor is still on the meta device afterwards.
    """
    expected = model.state_dict(keep_vars=True)
    check_keys(expected.keys(), state.keys(), source)
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(t.shape)}"
             for k, t in expected.items() if state[k].shape != t.shape]
    if wrong:
        raise ModelLoadError(f"checkpoint {source!r} does not fit the model architecture: "
                             f"{len(wrong)} weight(s) have another shape ({_some(wrong)})")
    for key, target in expected.items():
        value = state[key]
        if value.is_floating_point() and target.is_floating_point() and value.dtype != target.dtype:
            state[key] = value.to(target.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    check_materialised(model, source)


def check_keys(expected, found, source: str) -> None:
    """Raise :class:`ModelLoadError` when ``found`` (checkpoint keys) differs from ``expected``
    (the architecture's): a model with missing weights would silently run random ones."""
    expected, found = set(expected), set(found)
    raise_for_keys(expected - found, found - expected, len(expected), source)


def raise_for_keys(missing, unexpected, n_expected: int, source: str) -> None:
    """Raise :class:`ModelLoadError` naming ``source`` and a few of the ``missing`` and
    ``unexpected`` keys, if there are any."""
    missing, unexpected = sorted(missing), sorted(unexpected)
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} of the model's {n_expected} weights are missing "
                     f"({_some(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} checkpoint entries are not in the model "
                     f"({_some(unexpected)})")
    raise ModelLoadError(f"checkpoint {source!r} does not match the model architecture: "
                         f"{'; '.join(parts)}. Check that the architecture (or config) is the one "
                         "the checkpoint was saved from")


def check_materialised(model: nn.Module, source: str) -> None:
    """Raise :class:`ModelLoadError` if any parameter or buffer of ``model`` has no data."""
    empty = [name for name, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if empty:
        raise ModelLoadError(f"loading {source!r} left {len(empty)} tensor(s) without values "
                             f"({_some(empty)}); this model type cannot be loaded this way")


def _some(names: list[str]) -> str:
    more = len(names) - _SHOWN_KEYS
    return ", ".join(names[:_SHOWN_KEYS]) + (f", and {more} more" if more > 0 else "")


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
