"""One model load (and one classified image) in a fresh process, for ``bench_load.py``.

    python benchmarks/_load_child.py VARIANT MODEL IMAGE

VARIANT is ``coderclip`` (``coderclip.encoders.load_encoder(MODEL)``; MODEL is a coderclip model
spec), ``open_clip`` (a plain open_clip loop; MODEL is ``ARCH:CHECKPOINT``) or ``transformers``
(a plain transformers loop; MODEL is a folder). Each variant loads the model, embeds the CIFAR-10
class prompts and IMAGE, and prints one JSON line: peak resident memory (``VmHWM``, see
``_peak_mb``) after the imports, after the load and at the end, the seconds since the interpreter
started at each of those points, the predicted class, and which of torch / open_clip / transformers were imported.
Only this file's own imports run before the first measurement.
"""

import json
import resource
import sys
import time

T0 = time.monotonic()
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _peak_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` (the high-water mark of this program's
    own address space), else ``ru_maxrss``, which Linux carries over from the parent process
    across fork + exec (a parent that once held a big model would raise every child's figure)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _process_age() -> float:
    """Seconds since this process started (from /proc, so interpreter start-up counts)."""
    import os

    ticks = int(open(f"/proc/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()[19])
    uptime = float(open("/proc/uptime").read().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def main(variant: str, model: str, image: str) -> None:
    marks = {}

    def mark(name: str) -> None:
        marks[name] = {"peak_rss_mb": round(_peak_mb(), 1), "s": round(time.monotonic() - T0, 3)}

    import torch
    from PIL import Image

    torch.set_num_threads(1)
    prompts = [f"a photo of a {c}." for c in CLASSES]
    if variant == "coderclip":
        from coderclip.encoders import load_encoder

        mark("imports")
        enc = load_encoder(model, device="cpu")
        mark("loaded")
        text = enc.encode_texts(prompts)
        img = enc.encode_images([Image.open(image)])
    elif variant == "open_clip":
        import open_clip

        mark("imports")
        arch, ckpt = model.split(":", 1)
        clip, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=ckpt)
        clip.eval()
        tokenizer = open_clip.get_tokenizer(arch)
        mark("loaded")
        with torch.inference_mode():
            text = clip.encode_text(tokenizer(prompts))
            img = clip.encode_image(preprocess(Image.open(image)).unsqueeze(0))
    elif variant == "transformers":
        from transformers import CLIPModel, CLIPProcessor

        mark("imports")
        clip = CLIPModel.from_pretrained(model).eval()
        processor = CLIPProcessor.from_pretrained(model)
        mark("loaded")
        with torch.inference_mode():
            text = clip.get_text_features(**processor(text=prompts, return_tensors="pt", padding=True))
            img = clip.get_image_features(**processor(images=Image.open(image), return_tensors="pt"))
        text, img = (getattr(t, "pooler_output", t) for t in (text, img))
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    text = torch.nn.functional.normalize(text.float(), dim=-1)
    img = torch.nn.functional.normalize(img.float(), dim=-1)
    pred = CLASSES[int((img @ text.T).argmax())]
    mark("first_result")
    print(json.dumps({"variant": variant, "marks": marks, "prediction": pred,
                      "process_age_at_result_s": round(_process_age(), 3),
                      "imported": {m: m in sys.modules for m in ("open_clip", "transformers", "timm")}}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
