#!/usr/bin/env bash
# One-command set-up on a fresh Debian/Ubuntu machine with Python >= 3.10 (run as root, or with sudo):
# the package with its test tools, the Fashion-MNIST data (Debian package), and the 20 exact test
# images of foolbox 3.3.4 used by the tests (data files only, installed without dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist
fi

"$PY" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps "foolbox==3.3.4"

# Fail here, not later, if the environment is not usable.
"$PY" - <<'PY'
import torch, lightning, timm, torchmetrics
from tpa_lightning.models.robustbench_adapter import import_robustbench
import_robustbench()
from tpa_lightning.data.samples import foolbox_samples
foolbox_samples("cifar10")
print(f"set-up ok: torch {torch.__version__}, lightning {lightning.__version__}, timm {timm.__version__}")
PY
