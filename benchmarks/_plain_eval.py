"""A plain open_clip zero-shot evaluation loop (what a user writes in 20 lines), for the
side-by-side timings of ``bench_cold_run.py``.

    python benchmarks/_plain_eval.py ARCH CHECKPOINT FOLDER WORKERS
"""

import sys

import open_clip
import torch
import torchvision

arch, ckpt, folder, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(1)
model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=ckpt)
model.eval()
tokenizer = open_clip.get_tokenizer(arch)
data = torchvision.datasets.ImageFolder(folder, transform=preprocess)
prompts = [f"a photo of a {c.replace('_', ' ')}." for c in data.classes]
correct = 0
with torch.inference_mode():
    text = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts)), dim=-1)
    for x, y in torch.utils.data.DataLoader(data, batch_size=64, num_workers=workers):
        img = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        correct += int(((img @ text.T).argmax(1) == y).sum())
print(f"accuracy {correct / len(data):.4f} on {len(data)} images")
