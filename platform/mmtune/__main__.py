"""``python -m mmtune`` runs the CLI."""

from mmtune.cli import main

main()
