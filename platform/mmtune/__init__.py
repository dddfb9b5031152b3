"""mmtune: multi-modal, multi-task model search and honest ablations for chest CT + clinical data."""

__version__ = "0.1.0"
