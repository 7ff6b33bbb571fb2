"""python -m kit: one subcommand per job, each handled by one module's add_arguments/main."""
import argparse
import importlib
import sys

from kit.errors import UserError

COMMANDS = {
    "prepare": "kit.data.cache",
    "train": "kit.train",
    "sample": "kit.sample",
    "score": "kit.metrics.score",
    "zip": "kit.package",
    "kernel": "kit.kernels",
    "demo": "kit.demo",
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


def main(argv=None) -> int:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(prog="python -m kit", description=__doc__.split(":")[1].strip())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        summary = module.__doc__.strip().splitlines()[0]
        command = sub.add_parser(name, help=summary, description=summary)
        module.add_arguments(command)
        command.set_defaults(handler=module.main)
    args = parser.parse_args(argv)
    return run(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
