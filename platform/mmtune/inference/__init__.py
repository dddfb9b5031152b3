"""Scoring trained models on any prepared data set: ``mmtune predict`` and ``mmtune evaluate``.

``runs`` finds the checkpoint, config and validation predictions of a RUN (a ``mmtune train`` run directory, a
trial directory or a checkpoint file); ``spec`` is what a model needs from data (image geometry, clinical
features and their training statistics, tasks); ``align`` maps a prepared data set onto that spec (missing
features -> missing indicators, classes matched by name); ``predict`` runs the model; ``evaluate`` writes the
external-validation results directory.
"""
