"""``python -m tdrl`` runs the command line."""
from tdrl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
