"""Joint search on Ray Tune: search-space YAML -> validated space -> Tune driver -> ``results/<study>/``.

Modules: ``space`` (loading a search-space file, ``--set``, the resolved base), ``keypaths`` (space keys against
``RunConfig``, conditions, dependency order), ``combinations`` (enumerate / sample / apply assignments),
``candidates`` (every combination against the registries), ``searchers`` (Tune param space / Optuna space / search
algorithm), ``data`` (the prepared data a search reads, prepared from a card when absent), ``resources`` (what the cluster can
run, concurrency), ``trial_entry`` (the dict every trial function receives), ``schedulers`` (ASHA / HyperBand that
record early stops), ``live`` (the rich live trial table), ``results`` (``trials.parquet``, predictions,
``best_config.yaml``, the summary), ``plan`` (``StudyPlan``: what the lifecycle needs from a search or an
ablation; ``SearchPlan``), ``driver`` (``run_study``: the one study lifecycle of tune and ablate), ``ablation``
(``Study``, an ablation's plan), ``cells`` (design -> trials), ``curve`` (a learning-curve trial function for
driver tests and benchmarks), ``display`` (labels shared by the tables).
"""
