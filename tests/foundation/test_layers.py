"""Dependencies point one way: core (checks, chunking, models, data) <- attacks and defenses <-
training, evaluation, callbacks <- jobs (config, the job set-up, the CLI, the train/purifier/evaluate
jobs). An AST walk over every module of ``tpa_lightning`` and ``defenses`` reads each in-project
import, at module level or inside a function, and fails when one runs against the layers, or when an
import sits inside a function without a reason listed here."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Layer of each module (longest matching prefix wins); a module may import its own layer and below.
LAYERS: dict[str, int] = {
    "tpa_lightning.checks": 0, "tpa_lightning.chunking": 0, "tpa_lightning.models": 0, "tpa_lightning.data": 0,
    "tpa_lightning.attacks": 1, "defenses": 1,
    "tpa_lightning.training": 2, "tpa_lightning.evaluation": 2, "tpa_lightning.callbacks": 2,
    "tpa_lightning.config": 3, "tpa_lightning.job_setup": 3, "tpa_lightning.cli": 3,
    "tpa_lightning.training.train_job": 3, "tpa_lightning.training.config_keys": 3,
    "tpa_lightning.training.purifier": 3, "tpa_lightning.evaluation.evaluate_job": 3,
}
#: Package ``__init__`` modules that re-export a job of a higher layer as public API (not checked).
FACADES = {
    "tpa_lightning": "lazy attributes for the whole toolkit",
    "tpa_lightning.evaluation": "re-exports evaluate(), the job of evaluate.py, beside the evaluation parts",
}
#: Imports of the two packages attacks and defenses may not make of each other (peers, not layers).
PEERS = {("tpa_lightning.attacks", "defenses"), ("defenses", "tpa_lightning.attacks")}
#: Imports inside a function, each with the reason no module-level import will do.
NESTED_ALLOWED = {
    ("tpa_lightning", "tpa_lightning.attacks"): "the package's lazy attributes (PEP 562): `import tpa_lightning` stays light",
    ("tpa_lightning", "tpa_lightning.callbacks"): "the package's lazy attributes",
    ("tpa_lightning", "tpa_lightning.data"): "the package's lazy attributes",
    ("tpa_lightning", "tpa_lightning.models"): "the package's lazy attributes",
    ("tpa_lightning", "tpa_lightning.training"): "the package's lazy attributes",
    ("defenses", "defenses"): "defenses.nrp_training imports Lightning; `import defenses` does not",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if best is None else LAYERS[best]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, nested in a function)`` of every in-project import of ``path``."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found += [(n, id(node) not in top) for n in names if n.split(".")[0] in ("tpa_lightning", "defenses")]
    return found


def _edges() -> list[tuple[str, str, bool]]:
    files = [*(REPO / "tpa_lightning").rglob("*.py"), *(REPO / "defenses").rglob("*.py")]
    return [(_module_name(f), target, nested) for f in sorted(files) for target, nested in _imports(f)]


def test_every_module_has_a_layer() -> None:
    unlayered = sorted({m for m, _, _ in _edges() if _layer(m) is None} - {"tpa_lightning"})
    assert not unlayered, unlayered


def test_imports_point_down_the_layers() -> None:
    against = []
    for module, target, _ in _edges():
        if module in FACADES:
            continue
        mine, theirs = _layer(module), _layer(target)
        if theirs is None or mine is None:
            continue
        if theirs > mine or any(module.startswith(a) and target.startswith(b) for a, b in PEERS):
            against.append(f"{module} -> {target}")
    assert not against, against


def test_imports_are_at_module_level_unless_a_reason_is_listed() -> None:
    nested = sorted({(m.rsplit(".", 1)[0] if m.startswith("defenses.") else m, t.split(".")[0]
                      if t.startswith("defenses") else ".".join(t.split(".")[:2]))
                     for m, t, n in _edges() if n})
    unexplained = [pair for pair in nested if pair not in NESTED_ALLOWED]
    assert not unexplained, unexplained


def test_the_walk_sees_the_layers_it_checks() -> None:
    edges = _edges()
    assert len(edges) > 100
    assert any(m.startswith("tpa_lightning.training") and t.startswith("tpa_lightning.attacks") for m, t, _ in edges)
    assert any(m.startswith("defenses") and t.startswith("tpa_lightning.") for m, t, _ in edges)
