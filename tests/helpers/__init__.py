"""Helpers shared by the tests: raw-data writers (``rawdata``, ``public_layouts``), tiny search spaces and curve
trainables (``tune``), and fake results directories (``ablation``)."""
