#!/usr/bin/env bash
# ImageNet plumbing demo: the 20 foolbox 3.3.4 ImageNet images (true ImageNet-1k labels) through
# evaluate.py with a 1000-class timm:resnet18 of RANDOM weights (seed 0) and TPA (official mode,
# released defaults) at eps 16/255. Checks the data layout, labels, weight loading, input size and
# the L-inf budget; the accuracy numbers mean nothing (random weights).
#
#   bash scripts/imagenet_demo.sh [N] [extra evaluate.py key=value ...]    # N images, default 20
#
# Writes outputs/imagenet_demo/{images/<4-digit label>/*.png, resnet18_random_seed0.safetensors,
# report/, budget.json}. Needs foolbox==3.3.4 installed (--no-deps; only its image files are read).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-20}"
shift || true
DEMO=outputs/imagenet_demo
IMAGES="$DEMO/images"
WEIGHTS="$DEMO/resnet18_random_seed0.safetensors"
REPORT="$DEMO/report"
PY="${PYTHON:-python}"
mkdir -p "$DEMO"

# 1. The foolbox ImageNet images as PNGs in class-index folders (0022/, 0099/, ...).
"$PY" - "$IMAGES" <<'PY'
import sys
from pathlib import Path

from PIL import Image

from tpa_lightning.data.samples import foolbox_data_dir

# foolbox_samples("imagenet") cannot be used: it stacks the images into one tensor and the ImageNet
# ones differ in size (512x512, 683x1024, ...). The files are read the way it reads them instead:
# sorted imagenet_<ii>_<label>.jpg, the label is the last "_" field of the name.
root = Path(sys.argv[1])
files = sorted(p for p in foolbox_data_dir().iterdir() if p.name.startswith("imagenet_"))[:20]
labels = []
for p in files:
    label = int(p.stem.split("_")[-1])
    folder = root / f"{label:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    Image.open(p).convert("RGB").save(folder / f"{p.stem}.png")
    labels.append(label)
print(f"{len(files)} images in {root}: labels {sorted(labels)}")
PY

# 2. A randomly initialised 1000-class timm resnet18 (seed 0), saved as safetensors.
"$PY" - "$WEIGHTS" <<'PY'
import sys

import timm
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
net = timm.create_model("resnet18", pretrained=False, num_classes=1000)
save_file({k: v.contiguous() for k, v in net.state_dict().items()}, sys.argv[1])
print(f"random timm:resnet18 (1000 classes, seed 0) -> {sys.argv[1]}")
PY

# 3. evaluate.py: white-box TPA (official, released defaults) at eps 0 and 16/255 only.
ARGS=(
  data.name=image_folder "data.root=$IMAGES" data.image_size=224 "data.limit_test=$N"
  data.batch_size=4 data.eval_batch_size=4
  model.name=timm:resnet18 "model.weights=$WEIGHTS"
  "eps=[0.0,0.06274509803921569]"
  # TPA's released defaults (tpa.py): steps and copies must be given, the config schema's own
  # defaults are steps=2, copies=2; step_size, noise_radius, lookahead, mix, momentum, init null =
  # the attack's defaults (eps/10, 0.112, 0.0113, 0.8, 0.9, released U(0, 0.0011)).
  "attacks=[{name: tpa, mode: official, eps: 0.06274509803921569, steps: 10, copies: 10}]"
  transfer.enabled=false "defenses=[]" certify.enabled=false autoattack.enabled=false
  sanity.enabled=true sanity.unbounded_steps=10 sanity.noise_draws=2
  resume=false "out=$REPORT" threads=1 trainer.enable_progress_bar=false
)
"$PY" evaluate.py "${ARGS[@]}" "$@" --print-config | sed -n '/^data:/,/^transfer:/p'
"$PY" evaluate.py "${ARGS[@]}" "$@"

# 4. The L-inf budget on the same images: evaluate.py keeps no adversarial examples of a white-box
#    section, so the attack is rebuilt here from the same config entry (same TPA class, defaults and
#    seed, via evaluate's own builders) and run once more on the same N images.
"$PY" - "$DEMO/budget.json" "${ARGS[@]}" "$@" <<'PY'
import json
import sys
import time

import torch
from omegaconf import OmegaConf

from tpa_lightning.config.loading import load_config
from tpa_lightning.evaluation.attacking import make_attack
from tpa_lightning.evaluation.evaluate_job import _build
from tpa_lightning.job_setup import datamodule_from

out, overrides = sys.argv[1], sys.argv[2:]
cfg = load_config("evaluate", overrides)
torch.set_num_threads(int(cfg.threads))
dm = datamodule_from(cfg)
dm.setup("test")
ds = dm.test_set
x = torch.stack([ds[i][0] for i in range(len(ds))])
y = torch.stack([torch.as_tensor(ds[i][1]) for i in range(len(ds))])
model = _build(str(cfg.model.name), cfg, dm.info)
entry = OmegaConf.to_container(cfg.attacks)[0]
atk = make_attack(entry, model, int(cfg.seed))
t0, c0 = time.perf_counter(), time.process_time()
with torch.enable_grad():
    x_adv = atk(x, y)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
linf = (x_adv - x).abs().flatten(1).amax(1)
res = {"what": "TPA rebuilt from the same config entry and seed (evaluate's builders), re-run on the same images",
       "attack": type(atk).__name__, "mode": atk.mode, "eps": atk.eps, "steps": atk.steps,
       "step_size": atk.step_size, "copies": atk.copies, "noise_radius": atk.noise_radius,
       "lookahead": atk.lookahead, "mix": atk.mix, "momentum": atk.momentum, "init": atk.init,
       "labels": y.tolist(), "images": [str(ds.dataset.samples[i][0]) if hasattr(ds, "dataset") else None
                                        for i in getattr(ds, "indices", range(len(ds)))],
       "max_abs_delta_per_image": linf.tolist(), "max_abs_delta": float(linf.max()),
       "max_abs_delta_x255": float(linf.max()) * 255, "within_budget": bool(linf.max() <= atk.eps + 1e-6),
       "in_0_1": bool(x_adv.min() >= 0 and x_adv.max() <= 1),
       "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "images_n": len(y), "threads": torch.get_num_threads()}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
if not res["within_budget"]:
    sys.exit("perturbation exceeds the budget")
PY
