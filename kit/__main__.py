"""python -m kit: one subcommand per job, each handled by one module's add_arguments/main."""
import argparse
import importlib
import sys

import kit
from kit.errors import UserError

# name -> (module with add_arguments/main, one-line help); only the chosen command's module is imported
COMMANDS = {
    "prepare": ("kit.data.cache", "turn Stanford Dogs (zips, folders) or other images into a 64×64 training cache"),
    "train": ("kit.train", "train a GAN within a hard time budget and end with images.zip"),
    "sample": ("kit.sample", "write a grid of samples from a checkpoint"),
    "score": ("kit.metrics.score", "score images against real ones with the competition's MiFID"),
    "weights": ("kit.weights", "pack the leaderboard networks' weights as a Kaggle dataset for kernels"),
    "zip": ("kit.package", "write or check the 10,000-image submission zip"),
    "kernel": ("kit.kernel.build", "build, push and follow the Kaggle kernels"),
    "demo": ("kit.demo", "the whole job on built-in demo data"),
}


def run(handler, args) -> int:
    """Call handler(args); UserError becomes one line on stderr and exit status 2."""
    try:
        return handler(args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser(argv) -> argparse.ArgumentParser:
    """The parser of `python -m kit`, with the flags of the command argv names (only that module is imported)."""
    parser = argparse.ArgumentParser(prog="python -m kit", description=kit.__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, summary) in COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        if argv[:1] == [name]:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(handler=module.main)
    return parser


def main(argv=None) -> int:
    """Parse the command line and run one subcommand."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    return run(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
