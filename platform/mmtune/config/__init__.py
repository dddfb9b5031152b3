"""Typed configuration: dataset cards, run configs, search spaces and ablation studies."""
