"""Config loading, overrides and the one-line errors of the entry points."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tpa_lightning.config import CONFIG_DIR, REPO_ROOT, ConfigError, EvaluateConfig, TrainConfig, load_config


@pytest.mark.parametrize("kind,schema", [("train", TrainConfig), ("evaluate", EvaluateConfig)])
def test_default_yaml_files_equal_the_dataclass_defaults(kind: str, schema: type) -> None:
    from_file = OmegaConf.load(CONFIG_DIR / f"{kind}.yaml")
    assert OmegaConf.to_container(from_file) == OmegaConf.to_container(OmegaConf.structured(schema))


def test_precedence_experiment_then_file_then_groups_then_keys(tmp_path: Path) -> None:
    cfg = load_config("train", ["experiment=cifar10_pgd_at"])
    assert cfg.data.name == "cifar10" and cfg.training.objective == "pgd_at" and cfg.experiment == "cifar10_pgd_at"
    extra = tmp_path / "extra.yaml"
    extra.write_text("training: {lr: 0.05}\ndata: {batch_size: 64}\n")
    cfg = load_config("train", ["experiment=cifar10_pgd_at", "data=fashion_mnist", "data.batch_size=32"], str(extra))
    assert cfg.training.lr == 0.05 and cfg.data.name == "fashion_mnist" and cfg.data.batch_size == 32


@pytest.mark.parametrize("override,message", [
    (["data.nme=3"], "data.nme: unknown config key"),
    (["attack.steps=abc"], "attack.steps"),
    (["attack.eps=-0.1"], "attack.eps: must be >= 0"),
    (["attack.copies=0"], "attack.copies: must be an integer >= 1"),
    (["training.val_attack.steps=0"], "training.val_attack.steps: must be an integer >= 1"),
    (["training.objective=magic"], "training.objective: must be one of"),
    # the attack's own constructor checks the values (config.validation.check_attack_config)
    (["attack.mode=fast"], "attack.mode: must be one of official, paper, got 'fast'"),
    (["attack.max_batch=0"], "attack.max_batch: must be an integer >= 1 or 'auto', got 0"),
    (["training.val_attack.norm=l3"], "training.val_attack.norm: must be one of linf, l2, got 'l3'"),
    (["training.val_attack.name=nosuch"], "training.val_attack.name: unknown attack 'nosuch'"),
    (["attack.options={mix: 2.0}"], "attack.options.mix: must be in [0, 1], got 2.0"),
    (["training.optimizer=lion"], "training.optimizer: must be one of sgd, adamw"),
    (["experiment=nope"], "experiment=nope: no such config; allowed: "),
    (["novalue"], "expected key=value"),
])
def test_bad_values_name_the_key(override: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config("train", override)


@pytest.mark.parametrize("override,message", [
    (["attacks=[{name: tpa, copies: 0}]"], "attacks[0].copies: must be an integer >= 1, got 0"),
    (["attacks=[{name: pgd, copies: 0}]"], None),     # pgd takes no copies: the shared key is not read
    (["attacks=[{name: pgd}, {name: di, options: {p: 2.0}}]"], "attacks[1].options.p: must be in [0, 1], got 2.0"),
    (["defenses=[{name: bitdepth, options: {bits: 0}}]"], "defenses[0].options.bits: must be an integer >= 1"),
    (["defenses=[{name: jpeg, options: {level: 3}}]"], "defenses[0]: unknown option(s) ['level']"),
])
def test_evaluate_attacks_and_defenses_are_checked_by_their_constructors(override: list[str],
                                                                          message: str | None) -> None:
    if message is None:
        load_config("evaluate", override)
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("evaluate", override)


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120, check=False)


@pytest.mark.parametrize("script,args,key", [
    ("train.py", ["trainer.max_epochs=0"], "trainer.max_epochs"),
    ("train.py", ["data.batch_size=x"], "data.batch_size"),
    ("train.py", ["--config", "/nonexistent.yaml"], "--config: file not found"),
    ("evaluate.py", ["eps=[0.1,-0.2]"], "eps"),
    ("evaluate.py", ["checkpoint=/nonexistent/last.ckpt"], "/nonexistent/last.ckpt"),
])
def test_entry_points_exit_2_with_one_line(script: str, args: list[str], key: str) -> None:
    proc = _run(script, *args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_print_config_prints_the_resolved_config() -> None:
    proc = _run("train.py", "--print-config", "attack.eps=0.2")
    assert proc.returncode == 0
    printed = OmegaConf.create(proc.stdout)
    assert printed.attack.eps == 0.2 and printed.experiment == "fmnist_tpa_at"
