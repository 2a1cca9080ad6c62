"""Research code behind BENCHMARKS.md "Study": pretraining objectives vs scratch vs TF-IDF at several
label budgets, seed tables, variant comparisons and the frozen-feature probe.

Each module runs as ``python -m kopretrain.experiments.<name> --help``. Unlike the helper packages,
experiments drive whole stages (as the pipeline does); their tests carry the ``experiments`` marker.
"""
