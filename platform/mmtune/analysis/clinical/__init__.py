"""Clinical-grade evaluation of per-patient predictions: calibration, operating points, decision curves, tables
per task / class / hospital / subgroup with patient-bootstrap (or DeLong) intervals, and the model card.

Modules: ``calibration`` (Brier, ECE, calibration intercept and slope, reliability curve), ``operating``
(sensitivity at fixed specificity and back, thresholds chosen on validation, confusion-based rates),
``decision`` (net benefit), ``tables`` (every metric of a task with intervals), ``subgroups`` (per hospital and
YAML-defined subgroups), ``plots`` (figures), ``report`` (report blocks), ``model_card`` (TRIPOD+AI / CLAIM).
"""
