"""``python -m app`` runs the ``aigw`` command line."""

from app.cli import main

main()
