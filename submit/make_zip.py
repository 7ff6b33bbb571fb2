"""Write or check the competition zip: a thin wrapper over `python -m kit zip` that runs from a fresh clone."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kit import package  # noqa: E402
from kit.__main__ import run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python submit/make_zip.py`: the flags of `python -m kit zip`."""
    parser = argparse.ArgumentParser(prog="submit/make_zip.py", description=package.__doc__.strip())
    package.add_arguments(parser)
    return parser


if __name__ == "__main__":
    sys.exit(run(package.main, build_parser().parse_args()))
