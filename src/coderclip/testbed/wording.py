"""Knowledge-wording ablation on the testbed: how the rerank's gain depends on how contrasts are
worded.

Three versions of the testbed pack are compared over the demo's test seeds, each with τ and K chosen
on the validation images: the contrasts as written (each side describes its own class); the same
contrasts in the "instead of" form that language models often produce ("a green peel instead of a
yellow peel": the i-th feature of A-vs-B followed by the i-th feature of B-vs-A); and that form after
the contrast lint's fix (:func:`coderclip.knowledge.lint.fix_contrasts`).

    python -m coderclip.testbed.wording --out wording.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from ..knowledge import Knowledge, load_knowledge
from ..names import normalize_name
from . import classes as tc


def with_instead_of_tails(knowledge: Knowledge) -> Knowledge:
    """A copy whose contrast features of A against B end in "instead of <B's feature>"."""
    out = copy.deepcopy(knowledge)
    by_name = {normalize_name(c.name): c for c in knowledge.classes}
    for c in out.classes:
        for other, feats in c.contrasts.items():
            theirs = by_name.get(normalize_name(other))
            back = theirs.contrasts.get(c.name, []) if theirs is not None else []
            if not back:
                continue
            c.contrasts[other] = [f"{f} instead of {back[i % len(back)]}" for i, f in enumerate(feats)]
    return out


def variants(knowledge: Knowledge) -> dict[str, Knowledge]:
    """The three wordings of the ablation, by name."""
    from ..knowledge.lint import fix_contrasts

    tails = with_instead_of_tails(knowledge)
    return {"as written": knowledge, "instead-of tails": tails, "after the lint's fix": fix_contrasts(tails)[0]}


def run_ablation(weights=None, per_class: int = tc.TEST_IMAGES_PER_CLASS, seeds=tc.TEST_SEEDS,
                 log=None) -> dict:
    """Rerank gain (CODER + rerank minus CODER, top-1 points) per wording, mean ± std over seeds,
    with τ and K chosen on the validation images for each wording, and at the library defaults."""
    from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K
    from ..knowledge.lint import lint_contrasts
    from .demo import PACK, run_demo
    from .model import load_testbed_encoder

    encoder = load_testbed_encoder(weights, device="cpu", precision="fp32")
    base = load_knowledge(PACK).align(tc.CLASS_NAMES)
    features: dict = {}
    rows = []
    for name, kn in variants(base).items():
        n_feats = sum(len(f) for c in kn.classes for f in c.contrasts.values())
        row = {"wording": name, "contrast_features": n_feats, "lint_findings": len(lint_contrasts(kn))}
        for protocol, tau, k in (("val", None, None), ("default", DEFAULT_TAU, DEFAULT_TOP_K)):
            r = run_demo(None, encoder=encoder, knowledge=kn, per_class=per_class, seeds=seeds, tau=tau, top_k=k,
                         features=features, log=log)
            row[protocol] = {"tau": r["rerank"]["tau"], "top_k": r["rerank"]["top_k"],
                             "coder": [round(r["methods"]["coder"]["top1"], 2), round(r["methods"]["coder"]["top1_std"], 2)],
                             "coder_rerank": [round(r["methods"]["coder-rerank"]["top1"], 2),
                                              round(r["methods"]["coder-rerank"]["top1_std"], 2)],
                             "gain": [round(r["rerank"]["gain"], 2), round(r["rerank"]["gain_std"], 2)],
                             "gain_per_seed": [round(s["top1"]["coder-rerank"] - s["top1"]["coder"], 2)
                                               for s in r["per_seed"]]}
        rows.append(row)
        if log:
            log(json.dumps(row))
    return {"seeds": list(seeds), "images_per_class": per_class, "encoder": encoder.identity, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m coderclip.testbed.wording", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    p.add_argument("--weights", default=None, help="testbed weights (default: the shipped ones)")
    p.add_argument("--per-class", type=int, default=tc.TEST_IMAGES_PER_CLASS)
    args = p.parse_args(argv)
    result = run_ablation(args.weights, per_class=args.per_class, log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
