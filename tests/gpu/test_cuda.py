"""CUDA checks: attacks, their generators and autocast on a GPU, a 1-GPU Lightning fit with TPA-AT and
the callbacks, and evaluate.py on a GPU. Each result is checked against an independent computation
(the model's own loss, a seeded CUDA generator's draw, the CPU result, a direct recount).

Marked ``cuda`` and skipped without a CUDA GPU, so they are collected (and skipped) on a CPU
machine; ``bash scripts/gpu_check.sh`` runs them where a GPU is at hand.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from tpa_lightning.attacks import ATTACKS, build_attack
from tpa_lightning.attacks.base import stream_seed
from tpa_lightning.callbacks import RobustAccuracyCallback, TransferCallback
from tpa_lightning.config import load_config
from tpa_lightning.data.fashion_mnist import INFO, load_fashion_mnist
from tpa_lightning.evaluation import TensorImages, evaluate
from tpa_lightning.models import build_model
from tpa_lightning.training import AdversarialTrainingModule

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

REPO = Path(__file__).resolve().parents[2]
#: the device under test and the Lightning accelerator that puts a run on it
DEV = torch.device("cuda")
ACCELERATOR = "gpu"
EPS = 8 / 255
#: attacks that take a number of copies (kept at 2 here)
WITH_COPIES = ("di", "vt", "ssa", "pgn", "bsr", "mef", "sia", "decowa", "tpa")
#: attacks that draw from the attack's generator
RANDOM = ("pgd", "di", "vt", "ssa", "pgn", "rap", "bsr", "mef", "sia", "decowa", "l2t", "tpa")


def small_options(name: str) -> dict[str, Any]:
    """eps 8/255, 2 steps, seed 0; 2 copies where the attack has copies; RAP's inner loop from the start."""
    opts: dict[str, Any] = {"eps": EPS, "steps": 2, "seed": 0}
    if name in WITH_COPIES:
        opts["copies"] = 2
    if name == "rap":
        opts.update(late_start=0, inner_steps=2)
    return opts


def ce(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Mean cross-entropy of ``model`` (fp32, eval mode) on ``(x, y)``."""
    with torch.no_grad():
        return float(F.cross_entropy(model(x).float(), y))


def in_budget(x_adv: Tensor, x: Tensor, eps: float) -> None:
    assert x_adv.device.type == DEV.type
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= eps + 1e-6


@pytest.fixture(scope="module")
def gpu_model() -> nn.Module:
    """pyautoattack's trained CIFAR-10 ResNet-18 on the GPU (its own copy: the session fixture
    ``autoattack_resnet18`` stays on the CPU). A trained model makes "the attack raised the loss"
    a margin of whole nats, not of rounding."""
    return build_model("pretrained:autoattack_resnet18").eval().to(DEV)


@pytest.fixture(scope="module")
def cifar(cifar_samples: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """foolbox's 20 CIFAR-10 test images and labels, on the GPU."""
    x, y = cifar_samples
    return x.to(DEV), y.to(DEV)


@pytest.fixture
def exact_gpu() -> Iterator[None]:
    """fp32 without TF32 in cuDNN convolutions and matmuls, and deterministic cuDNN algorithms, for
    one test (restored afterwards): for comparisons with the CPU and between two calls. Only the
    new ``fp32_precision`` API is used (mixing it with ``allow_tf32`` is an error in torch)."""
    knobs = [torch.backends.cudnn.conv, torch.backends.cuda.matmul]
    saved = [k.fp32_precision for k in knobs]
    det, bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        for k in knobs:
            k.fp32_precision = "ieee"
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        yield
    finally:
        for k, v in zip(knobs, saved):
            k.fp32_precision = v
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = det, bench


# ---------------------------------------------------------------------- 1. attacks on the GPU
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_on_gpu_stays_in_budget_and_raises_the_loss(name: str, gpu_model: nn.Module,
                                                                 cifar: tuple[Tensor, Tensor]) -> None:
    x, y = cifar
    x_adv = build_attack(name, gpu_model, **small_options(name))(x, y)
    in_budget(x_adv, x, EPS)
    clean, adv = ce(gpu_model, x, y), ce(gpu_model, x_adv, y)
    # on the CPU the same settings take this model from 0.03 to between 1.5 (BSR) and 16 (BIM) nats
    assert adv > clean + 0.5, f"{name}: loss {clean:.4f} -> {adv:.4f}"


def test_random_start_is_the_draw_of_a_seeded_gpu_generator(gpu_model: nn.Module,
                                                           cifar: tuple[Tensor, Tensor]) -> None:
    """PGD with ``step_size=0`` returns its random start: it must be exactly U(-eps, eps) drawn
    from a CUDA generator seeded with the seed (one draw shared by the batch), or, with ``keys``,
    from image i's own CUDA generator seeded with ``stream_seed(seed, keys[i])``."""
    x, y = cifar
    atk = build_attack("pgd", gpu_model, eps=EPS, steps=1, step_size=0.0, seed=5)
    x_adv = atk(x, y)
    assert atk.generator is not None and atk.generator.device.type == DEV.type
    g = torch.Generator(device=DEV).manual_seed(5)
    start = torch.rand((1, *x.shape[1:]), generator=g, device=DEV) * (2 * EPS) - EPS
    torch.testing.assert_close(x_adv, (x + start).clamp(0, 1), rtol=0, atol=1e-6)

    keys = torch.arange(x.shape[0]) + 1000
    x_adv_k = atk(x, y, keys=keys)
    assert atk.image_generators is not None
    assert all(gen.device.type == DEV.type for gen in atk.image_generators)
    starts = torch.cat([torch.rand((1, *x.shape[1:]), device=DEV,
                                   generator=torch.Generator(device=DEV).manual_seed(stream_seed(5, int(k))))
                        for k in keys]) * (2 * EPS) - EPS
    torch.testing.assert_close(x_adv_k, (x + starts).clamp(0, 1), rtol=0, atol=1e-6)
    assert not torch.equal(x_adv_k, x_adv)


@pytest.mark.parametrize("name, extra", [("pgd", {}), ("tpa", {"init": "uniform"})])
def test_seeded_attack_repeats_exactly_on_gpu(name: str, extra: dict[str, Any], gpu_model: nn.Module,
                                              cifar: tuple[Tensor, Tensor], exact_gpu: None) -> None:
    x, y = cifar
    atk = build_attack(name, gpu_model, **{**small_options(name), **extra})
    first = atk(x, y)
    assert torch.equal(atk(x, y), first)                    # the same attack, called again
    assert torch.equal(atk.replace()(x, y), first)          # a fresh attack with the same seed
    assert not torch.equal(atk(x, y, seed=1), first)        # another seed: another random start


def test_fgsm_on_gpu_matches_the_cpu(gpu_model: nn.Module, cifar: tuple[Tensor, Tensor], exact_gpu: None) -> None:
    x, y = cifar
    cpu_model = build_model("pretrained:autoattack_resnet18").eval()
    for (k, a), b in zip(gpu_model.state_dict().items(), cpu_model.state_dict().values()):
        assert torch.equal(a.cpu(), b), k
    with torch.no_grad():
        torch.testing.assert_close(gpu_model(x).cpu(), cpu_model(x.cpu()), rtol=1e-4, atol=1e-4)
    adv_gpu = build_attack("fgsm", gpu_model, eps=EPS, seed=0)(x, y)
    assert adv_gpu.device.type == DEV.type
    adv_gpu = adv_gpu.cpu()
    adv_cpu = build_attack("fgsm", cpu_model, eps=EPS, seed=0)(x.cpu(), y.cpu())
    assert not torch.equal(adv_cpu, x.cpu())
    same = ((adv_gpu - adv_cpu).abs() <= 1e-6).float().mean().item()
    # only sign flips of near-zero gradients may differ
    assert same >= 0.99, f"only {same:.4%} of the pixels agree"
    assert (adv_gpu - adv_cpu).abs().max() <= 2 * EPS + 1e-6


# ---------------------------------------------------------------------- 2. generator device
@pytest.mark.parametrize("name", RANDOM)
def test_attack_on_gpu_inputs_draws_from_a_gpu_generator(name: str, gpu_model: nn.Module,
                                                         cifar: tuple[Tensor, Tensor]) -> None:
    x, y = cifar
    atk = build_attack(name, gpu_model, **small_options(name))
    atk(x[:4], y[:4])
    assert atk.generator is not None and atk.generator.device.type == DEV.type
    atk(x[:4], y[:4], keys=torch.arange(4))
    assert atk.image_generators is not None and len(atk.image_generators) == 4
    assert all(g.device.type == DEV.type for g in atk.image_generators)


# ---------------------------------------------------------------------- 3. autocast fp16 / bf16
@pytest.mark.parametrize("precision, dtype", [("16", torch.float16), ("bf16", torch.bfloat16)])
def test_pgd_under_gpu_autocast(precision: str, dtype: torch.dtype, gpu_model: nn.Module,
                                cifar: tuple[Tensor, Tensor]) -> None:
    x, y = cifar
    conv = next(m for m in gpu_model.modules() if isinstance(m, nn.Conv2d))
    seen: list[torch.dtype] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    try:
        x_adv = build_attack("pgd", gpu_model, eps=EPS, steps=5, seed=0, precision=precision)(x, y)
    finally:
        handle.remove()
    assert seen and set(seen) == {dtype}, f"the model ran in {set(seen)}, not {dtype}"
    in_budget(x_adv, x, EPS)
    assert x_adv.dtype == torch.float32
    clean, adv = ce(gpu_model, x, y), ce(gpu_model, x_adv, y)     # judged at fp32
    assert adv >= clean and adv > clean + 0.5, f"{precision}: loss {clean:.4f} -> {adv:.4f}"


# ---------------------------------------------------------------------- 4. 1-GPU Lightning fit
def test_one_gpu_fit_with_tpa_at_and_the_callbacks(tmp_path: Path) -> None:
    x, y = load_fashion_mnist("data", train=False)
    x, y = x[:192].float() / 255.0, y[:192].long()
    train, val = TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:])
    module = AdversarialTrainingModule("small_cnn", num_classes=10, in_chans=1, mean=list(INFO.mean),
                                       std=list(INFO.std), model_kwargs={"width": 8}, objective="tpa_at",
                                       attack={"name": "tpa", "eps": 0.1, "steps": 2, "copies": 2},
                                       val_attack={"name": "pgd", "eps": 0.1, "steps": 2}, precision="bf16-mixed")
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    robust = RobustAccuracyCallback("pgd", eps=0.1, steps=2, limit_batches=2, seed=3)
    transfer = TransferCallback("tpa", targets={"fresh": "small_cnn"}, eps=0.1, steps=2, copies=2, limit_batches=2,
                                seed=1, target_kwargs={"num_classes": 10, "in_chans": 1})
    devices: set[str] = set()
    handle = module.model.register_forward_pre_hook(lambda _m, args: devices.add(args[0].device.type))
    trainer = L.Trainer(accelerator=ACCELERATOR, devices=1, max_epochs=1, limit_train_batches=4, limit_val_batches=2,
                        precision="bf16-mixed", callbacks=[robust, transfer], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    try:
        trainer.fit(module, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=32))
    finally:
        handle.remove()
    assert devices == {DEV.type}, f"the model saw inputs on {devices}"
    assert trainer.global_step == 4
    assert any(not torch.equal(before[k], v.cpu()) for k, v in module.model.state_dict().items())
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    rates = ["train/adv_acc", "val/clean_acc", "val/adv_acc", "robust_acc/pgd", "transfer/fresh",
             "transfer/fresh/on_correct", "transfer/fresh/clean_acc", "transfer/source"]
    losses = ["train/adv_loss", "val/clean_loss", "val/adv_loss"]
    for key in rates + losses:
        assert key in m, f"{key} not logged; logged: {sorted(m)}"
        assert torch.isfinite(torch.tensor(m[key])), (key, m[key])
    for key in rates:
        assert 0.0 <= m[key] <= 1.0, (key, m[key])
    for key in losses:
        assert m[key] >= 0.0, (key, m[key])
    assert m["train/eps"] == pytest.approx(0.1)

    # independent recounts on the GPU, on the 64 validation images (2 batches of 32)
    module.to(DEV).eval()
    net = module.model
    correct_clean = correct_robust = 0
    for i, (xb, yb) in enumerate(DataLoader(val, batch_size=32)):
        xb, yb = xb.to(DEV), yb.to(DEV)
        with torch.no_grad(), torch.autocast(DEV.type, dtype=torch.bfloat16):   # validation_step's autocast
            correct_clean += int((net(xb).argmax(1) == yb).sum())
        x_adv = build_attack("pgd", module, eps=0.1, steps=2, seed=robust.batch_seed(i))(xb, yb)
        with torch.no_grad():
            correct_robust += int((net(x_adv).argmax(1) == yb).sum())
    one = 1 / 64 + 1e-6        # one image either way (GPU kernels need not be bitwise repeatable)
    assert m["val/clean_acc"] == pytest.approx(correct_clean / 64, abs=one)
    assert m["robust_acc/pgd"] == pytest.approx(correct_robust / 64, abs=one)
    target = transfer.targets["fresh"]
    assert next(target.parameters()).device.type == DEV.type
    with torch.no_grad():
        target_right = int((target.eval()(val.tensors[0].to(DEV)).argmax(1) == val.tensors[1].to(DEV)).sum())
    assert m["transfer/fresh/clean_acc"] == pytest.approx(target_right / 64, abs=one)


# ---------------------------------------------------------------------- 5. evaluate.py on the GPU
SMALL_EVAL = ("trainer.enable_progress_bar=false", "threads=2", "resume=false", "data.batch_size=32",
              "eps=[0,0.1]",
              "attacks=[{name: pgd, eps: 0.1, steps: 5, copies: null}, {name: tpa, eps: 0.1, steps: 2, copies: 2}]",
              "transfer.enabled=false", "defenses=[]", "certify.enabled=false", "autoattack.enabled=false",
              "sanity.unbounded_steps=5", "sanity.noise_draws=2")


@pytest.fixture(scope="module")
def trained_cnn_state() -> dict[str, Tensor]:
    """The evaluation tests' small CNN (with Fashion-MNIST normalisation), trained briefly on the
    GPU on 2000 training images so that the attacks have accuracy to take away; CPU tensors."""
    x, y = load_fashion_mnist("data", train=True)
    x, y = x[:2000].float().div(255).to(DEV), y[:2000].to(DEV)
    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=10, in_chans=1, mean=list(INFO.mean), std=list(INFO.std)).to(DEV)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(3):
        for s in range(0, 2000, 100):
            opt.zero_grad()
            F.cross_entropy(model(x[s:s + 100]), y[s:s + 100]).backward()
            opt.step()
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _cnn(state: dict[str, Tensor]) -> nn.Module:
    model = build_model("small_cnn", num_classes=10, in_chans=1, mean=list(INFO.mean), std=list(INFO.std))
    model.load_state_dict(state)
    return model.eval()


def _curve(report: dict[str, Any], attack: str) -> dict[float, int]:
    return {float(p["eps"]): int(p["correct"]) for p in report["whitebox"][attack]["curve"]}


def test_evaluate_runs_the_model_on_the_gpu_and_matches_the_cpu(tmp_path: Path,
                                                               trained_cnn_state: dict[str, Tensor]) -> None:
    x, y = load_fashion_mnist("data", train=False)
    data = TensorImages(x[:64].float() / 255, y[:64], name="Fashion-MNIST test[:64]")
    reports, devices = {}, {}
    for accelerator in ("cpu", ACCELERATOR):
        model = _cnn(trained_cnn_state)
        seen: set[str] = set()
        handle = model.register_forward_pre_hook(lambda _m, args, seen=seen: seen.add(args[0].device.type))
        try:
            cfg = load_config("evaluate", [f"out={tmp_path / accelerator}", f"trainer.accelerator={accelerator}",
                                           *SMALL_EVAL])
            reports[accelerator] = evaluate(cfg, model=model, dataset=data, data_info=INFO)
        finally:
            handle.remove()
        devices[accelerator] = seen
    assert DEV.type in devices[ACCELERATOR], f"evaluation on {ACCELERATOR} ran the model on {devices[ACCELERATOR]}"
    assert devices["cpu"] == {"cpu"}
    gpu, cpu = reports[ACCELERATOR], reports["cpu"]
    # clean accuracy: a direct count on the CPU, and the same on both devices (to one image)
    with torch.no_grad():
        direct = int((_cnn(trained_cnn_state)(data.x).argmax(1) == data.y).sum())
    assert cpu["clean"]["total"] == gpu["clean"]["total"] == 64
    assert abs(cpu["clean"]["correct"] - direct) <= 1 and abs(gpu["clean"]["correct"] - direct) <= 1
    for attack in ("pgd", "tpa"):
        a, b = _curve(gpu, attack), _curve(cpu, attack)
        assert a.keys() == b.keys() == {0.0, 0.1}
        assert all(abs(a[e] - b[e]) <= 2 for e in a), (attack, a, b)
        assert a[0.1] < a[0.0], f"{attack} on the GPU took no accuracy away: {a}"


def test_evaluate_py_on_the_gpu_matches_the_cpu(tmp_path: Path, trained_cnn_state: dict[str, Tensor]) -> None:
    """``python evaluate.py ... trainer.accelerator=gpu`` (a subprocess, as a user runs it) exits 0 and
    reports the figures of the same run on the CPU (to an image or two)."""
    weights = tmp_path / "tiny.pt"
    torch.save(trained_cnn_state, weights)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    reports = {}
    for accelerator in ("cpu", ACCELERATOR):
        out = tmp_path / accelerator
        r = subprocess.run([sys.executable, str(REPO / "evaluate.py"), f"out={out}", f"model.name={weights}",
                            "model.arch=small_cnn", "data.limit_test=64", f"trainer.accelerator={accelerator}",
                            *SMALL_EVAL], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        reports[accelerator] = json.loads((out / "report.json").read_text())
    gpu, cpu = reports[ACCELERATOR], reports["cpu"]
    assert gpu["run"]["processes"] == cpu["run"]["processes"] == 1
    assert gpu["clean"]["total"] == cpu["clean"]["total"] == 64
    assert abs(gpu["clean"]["correct"] - cpu["clean"]["correct"]) <= 1
    for attack in ("pgd", "tpa"):
        a, b = _curve(gpu, attack), _curve(cpu, attack)
        assert a.keys() == b.keys() and all(abs(a[e] - b[e]) <= 2 for e in a), (attack, a, b)
