"""Run benchmarks: ``python -m bench`` runs all, ``python -m bench NAME`` one.

Each benchmark is a module ``bench/<name>.py`` with a ``main(argv) -> dict`` that prints a
table and returns its figures; this runner prints them as the last line, one JSON object
(``{"bench": NAME, ...}``). Benchmarks that need Django set it up themselves.
"""

import importlib
import json
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def run(name: str, argv: list[str]) -> dict:
    module = importlib.import_module(f"bench.{name}")
    figures = module.main(argv)
    line = {"bench": name, **figures}
    print(json.dumps(line), flush=True)
    return line


def main() -> int:
    args = sys.argv[1:]
    names = available()
    if args and args[0] not in names:
        print(f"unknown benchmark {args[0]!r}; available: {', '.join(names) or 'none'}", file=sys.stderr)
        return 2
    for name in [args[0]] if args else names:
        run(name, args[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
