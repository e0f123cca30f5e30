"""The transferability benchmark on CIFAR-10 (JPEG copy): ``python -m benchmarks.transfer [--quick]``.

Model zoo: :mod:`.zoo` and :mod:`.train_zoo`; the benchmark itself: :mod:`.runner` (units of work,
cached under ``--cache``), :mod:`.crafting`, :mod:`.targets`, :mod:`.flatness`, :mod:`.tables`,
:mod:`.ablation`, :mod:`.plots`, :mod:`.report`; settings in :mod:`.settings`.
"""
