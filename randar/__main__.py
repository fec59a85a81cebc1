"""`python -m randar <command>`: see randar/cli/."""
from randar.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
