"""The transferability benchmark on CIFAR-10 (JPEG copy): ``python -m benchmarks.transfer [--quick]``.

Model zoo: :mod:`.zoo` and :mod:`.train_zoo`; the benchmark itself: :mod:`.runner` (units of work,
cached under ``--cache``), :mod:`.crafting`, :mod:`.targets`, :mod:`.flatness`; the data model the
runner fills and the report reads: :mod:`.results`; the report: :mod:`.tables`, :mod:`.ablation`,
:mod:`.plots`, :mod:`.report` (and the modules it calls, none of which imports the runner); settings
in :mod:`.settings`.
"""
