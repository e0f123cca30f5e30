"""The CIFAR-10 adversarial-training study (issue 15): fast-AT, PGD-AT, TRADES and TPA-AT at matched
compute, evaluated on the same 1,000 test images.

Steps (each resumes; the commands and their times are in docs/training.md)::

    python -m benchmarks.transfer.train_zoo --root outputs/at fast_at pgd_at trades tpa_at   # train
    python -m benchmarks.transfer.train_zoo --root outputs/at --export fast_at pgd_at trades tpa_at
    python -m benchmarks.at_study --evaluate       # evaluate.py on each exported model (evaluations.py)
    python -m benchmarks.at_study                  # the study's tables, tests and figures

Inputs, all committed: each model's weights and training record (``benchmarks/transfer/weights/<name>``:
config, metrics.json with ``passes_per_image``, the zoo's run record with wall time, the learning
curve), its evaluate.py reports (``docs/results/at_study/eval/<name>/report.json``, with per-image
outcomes) and, once the transferability benchmark has run on the new models, its ``results.csv``
(the four models are Table 2's secured targets). Output: ``docs/results/at_study/`` (README.md,
study.csv, study.json, paired.csv, robust_vs_time.png, curves.png).
"""
