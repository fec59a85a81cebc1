"""`python -m randar <command>`: see randar/cli.py."""
from randar.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
