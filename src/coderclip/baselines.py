"""Training-free peers of CODER, computed from the same knowledge and text bank: DCLIP, a CuPL-style
description ensemble and WaffleCLIP (docs/method.md, "Baselines").

Each is a class-prototype classifier: one ``[C, D]`` matrix per method (``[S, C, D]`` for
WaffleCLIP's S descriptor sets), precomputed once per bank, and a score that is one matrix product
per batch of images, ``100 · x̂ · P_cᵀ``. Cost per image: ``C × D`` per method; building the
prototypes is linear in the number of texts.

* DCLIP: s_c = mean over the class's descriptors d of cos(x, "{c}, which has {d}.") = x̂ · mean(t̂).
* CuPL-style: the class embedding is the normalised mean of the class's description sentences
  (its attribute and look-alike sentences; with ``+ templates`` also the CLIP template sentences);
  s_c = cos(x, that embedding).
* WaffleCLIP: s_c = mean over random descriptors r of cos(x, "a photo of {c}, which has {r}."),
  one score matrix per descriptor set (seed).

A class without the texts a method needs (e.g. no attributes) falls back to its name prompt, so
that every method ranks every class.
"""

from __future__ import annotations

import dataclasses

import torch

from .bank.textbank import TEXT_TYPES, TextBank

_T = {t: i for i, t in enumerate(TEXT_TYPES)}


def _class_mean(bank: TextBank, mask: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Mean embedding ``[C, D]`` of the entries in ``mask`` per class; ``fallback`` rows where a
    class has none."""
    emb = bank.embeddings.float()
    C, D = bank.n_classes, emb.shape[1]
    cls, rows = bank.entry_class[mask], bank.entry_row[mask]
    total = torch.zeros(C, D).index_add_(0, cls, emb[rows])
    count = torch.bincount(cls, minlength=C).float()
    out = total / count.clamp_min(1)[:, None]
    return torch.where((count > 0)[:, None], out, fallback)


def _unit(m: torch.Tensor) -> torch.Tensor:
    return m / m.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclasses.dataclass
class BaselineTables:
    """Class prototypes of the peer methods (``None`` where the bank lacks template or noise texts).

    ``dclip`` ``[C, D]``: mean descriptor embedding; ``cupl`` / ``cupl_templates`` ``[C, D]``: unit
    mean of the description sentences (without / with the template sentences); ``waffle``
    ``[S, C, D]``: mean noise-prompt embedding per descriptor set.
    """

    dclip: torch.Tensor | None
    cupl: torch.Tensor | None
    cupl_templates: torch.Tensor | None
    waffle: torch.Tensor | None

    @classmethod
    def from_bank(cls, bank: TextBank, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> BaselineTables:
        et, emb = bank.entry_type, bank.embeddings.float()
        C, D = bank.n_classes, emb.shape[1]
        is_name = et == _T["name"]
        name = torch.zeros(C, D)
        name[bank.entry_class[is_name]] = emb[bank.entry_row[is_name]]
        present = set(bank.types)

        # with no descriptions at all (names-only knowledge) both reduce to CLIP's name prompt
        dclip = _class_mean(bank, et == _T["descriptor"], name)
        desc = (et == _T["attribute"]) | (et == _T["analogous"])
        cupl = _unit(_class_mean(bank, desc, name))
        cupl_t = None
        if "ensemble" in present:
            cupl_t = _unit(_class_mean(bank, desc | (et == _T["ensemble"]), name))
        waffle = None
        if "noise" in present:
            is_noise = et == _T["noise"]
            seeds = torch.unique(bank.entry_other[is_noise]).tolist()
            waffle = torch.stack([_class_mean(bank, is_noise & (bank.entry_other == s), name)
                                  for s in seeds])

        def put(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype)

        return cls(put(dclip), put(cupl), put(cupl_t), put(waffle))

    @property
    def n_seeds(self) -> int:
        return 0 if self.waffle is None else int(self.waffle.shape[0])


def prototype_scores(x: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``100 · x̂ · Pᵀ`` ``[N, C]`` in float32 for unit image embeddings ``x`` ``[N, D]``."""
    return 100.0 * (x.to(prototypes.dtype) @ prototypes.T).float()
