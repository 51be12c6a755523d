"""``python -m barlake`` runs the ``lake`` command."""

from barlake.cli import main

main()
