"""``python -m edgefiq`` runs the command-line interface."""

from edgefiq.cli import main

if __name__ == "__main__":
    main()
