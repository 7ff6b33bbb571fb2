"""Every `python -m kit ...` and `python submit/...` command the README and docs/ show parses with the real CLI."""
import argparse
import importlib.util
import io
import re
import shlex
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from kit.__main__ import COMMANDS, build_parser
from kit.errors import UserError
from kit.kernel.build import KERNELS, SCORE_KERNEL, train_settings

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SEPARATORS = {"&&", "||", "|", ";"}
FENCE = re.compile(r"^```.*?$(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
BARE_KIT = re.compile(rf"(?:^|[\s(])kit ({'|'.join(COMMANDS)})\b[^`]*?\s--?\w")


def make_zip_parser() -> argparse.ArgumentParser:
    """submit/make_zip.py's parser, loaded from its file as `python submit/make_zip.py` would run it."""
    spec = importlib.util.spec_from_file_location("make_zip", ROOT / "submit" / "make_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def snippets(text: str):
    """The shell text of a markdown page: each fenced block's lines (backslash continuations joined), then each inline
    code span outside the blocks."""
    for block in FENCE.findall(text):
        yield from block.replace("\\\n", " ").splitlines()
    yield from INLINE.findall(FENCE.sub("", text))


def commands(text: str):
    """The argv after `python -m kit` / `-m kit` (torchrun) or `python submit/SCRIPT.py` in text, as (program, argv)."""
    found = []
    for snippet in snippets(text):
        if "-m kit" not in snippet and "submit/" not in snippet:
            continue
        tokens = shlex.split(snippet, comments=True)
        segments, current = [], []
        for token in tokens:
            if token in SEPARATORS:
                segments.append(current)
                current = []
            else:
                current.append(token)
        segments.append(current)
        for seg in segments:
            for i, token in enumerate(seg):
                if token == "-m" and seg[i + 1:i + 2] == ["kit"]:
                    found.append(("kit", seg[i + 2:]))
                    break
                if token.startswith("submit/") and token.endswith(".py") and i and "python" in seg[i - 1]:
                    found.append((token, seg[i + 1:]))
                    break
    return found


def strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """parser and its subcommands' parsers refusing abbreviated flags, so a shortened or misspelt flag fails."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                strict(child)
    return parser


def check(program: str, argv: list) -> None:
    """Parse argv with the real parser of program (kit or submit/make_zip.py); raise AssertionError naming what it
    refused."""
    if program == "kit":
        parser = build_parser(argv)
    else:
        assert program == "submit/make_zip.py", f"no such script in the docs' commands: {program}"
        parser = make_zip_parser()
    said = io.StringIO()
    try:
        with redirect_stderr(said), redirect_stdout(io.StringIO()):
            args = strict(parser).parse_args(argv)
    except SystemExit as e:
        if e.code == 0 and ("--help" in argv or "-h" in argv):
            return
        raise AssertionError(f"{program} {shlex.join(argv)}: {said.getvalue().strip().splitlines()[-1]}") from None
    if program == "kit" and args.command == "kernel":
        assert args.name in {*KERNELS, SCORE_KERNEL}, f"kernel {args.name!r} is not one of {[*KERNELS, SCORE_KERNEL]}"
        try:
            train_settings(args.settings)
        except UserError as e:
            raise AssertionError(str(e)) from None


def documented():
    """(page, program, argv) for every command of README.md and docs/*.md."""
    return [(page.relative_to(ROOT).as_posix(), program, argv)
            for page in PAGES for program, argv in commands(page.read_text(encoding="utf-8"))]


DOCUMENTED = documented()


@pytest.mark.parametrize("page, program, argv", DOCUMENTED,
                         ids=[f"{p}: {q} {' '.join(a)}"[:120] for p, q, a in DOCUMENTED])
def test_documented_command_parses(page, program, argv):
    """Each command shown parses: its subcommand and every flag exist and take the values shown."""
    check(program, argv)


def test_every_page_is_there_and_shows_commands():
    """The README and the four guide pages exist, and the extraction finds the commands each is known to show."""
    assert sorted(p.name for p in PAGES[1:]) == ["benchmarks.md", "kaggle.md", "scoring.md", "training.md"]
    shown = {(page, program, (argv or [""])[0]) for page, program, argv in DOCUMENTED}
    for page, program, first in [("README.md", "kit", "demo"), ("README.md", "kit", "prepare"),
                                 ("README.md", "submit/make_zip.py", "--checkpoint"), ("README.md", "kit", "kernel"),
                                 ("docs/training.md", "kit", "train"), ("docs/scoring.md", "kit", "score"),
                                 ("docs/kaggle.md", "kit", "weights"), ("docs/kaggle.md", "kit", "kernel")]:
        assert (page, program, first) in shown, f"{page} no longer shows `{program} {first} ...`"


def test_no_bare_kit_command_with_flags():
    """A command line with flags is written `python -m kit ...`, so the test above checks it; `kit train` alone names
    the command."""
    bare = [(page.name, s) for page in PAGES for s in snippets(page.read_text(encoding="utf-8"))
            if BARE_KIT.search(s) and "-m kit" not in s]
    assert not bare, f"write these as `python -m kit ...`: {bare}"


def test_extraction_reads_blocks_inline_code_and_shell_syntax():
    """Commands are found in code blocks and inline code, after &&, behind torchrun, across a backslash, without the
    comment."""
    text = ("Run `python -m kit sample --checkpoint a.pt --out g.png` or:\n\n```bash\n"
            "pip install -e . && python -m kit demo --force   # the demo\n"
            "torchrun --nproc_per_node 2 -m kit train --data d.npz \\\n  --out runs/x\n"
            "python submit/make_zip.py --check images.zip\n```\n")
    assert commands(text) == [("kit", ["demo", "--force"]), ("kit", ["train", "--data", "d.npz", "--out", "runs/x"]),
                              ("submit/make_zip.py", ["--check", "images.zip"]),
                              ("kit", ["sample", "--checkpoint", "a.pt", "--out", "g.png"])]


@pytest.mark.parametrize("program, argv, says", [
    ("kit", ["train", "--data", "d.npz", "--made-up-flag", "3"], "unrecognized arguments: --made-up-flag"),
    ("kit", ["train", "--data", "d.npz", "--lec", "0.3"], "unrecognized arguments: --lec"),
    ("kit", ["train", "--data", "d.npz", "--batch-size", "big"], "invalid int value"),
    ("kit", ["trian", "--data", "d.npz"], "invalid choice: 'trian'"),
    ("kit", ["kernel", "biuld", "biggan"], "invalid choice: 'biuld'"),
    ("kit", ["kernel", "build", "NAME"], "kernel 'NAME' is not one of"),
    ("kit", ["kernel", "build", "biggan", "--set", "no_such_field=1"], "no_such_field=1"),
    ("kit", ["weights", "pack"], "required: DIR"),
    ("kit", ["score", "images.zip", "--leaderboard", "privat", "--real", "dogs/"], "invalid choice: 'privat'"),
    ("submit/make_zip.py", ["--checkpoint", "last.pt", "--made-up-flag"], "unrecognized arguments: --made-up-flag"),
    ("submit/make_zip.py", ["--out", "images.zip"], "one of the arguments"),
])
def test_a_wrong_command_is_caught(program, argv, says):
    """A made-up flag, an abbreviation, a bad value, a misspelt or placeholder name, a missing argument: each fails."""
    with pytest.raises(AssertionError, match=re.escape(says)):
        check(program, argv)


def test_the_two_entry_points_run_with_help():
    """`python -m kit --help` and `python submit/make_zip.py --help` run in a fresh interpreter from the checkout."""
    kit_help = subprocess.run([sys.executable, "-m", "kit", "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    assert kit_help.returncode == 0, kit_help.stderr
    assert all(name in kit_help.stdout for name in COMMANDS)
    zip_help = subprocess.run([sys.executable, "submit/make_zip.py", "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    assert zip_help.returncode == 0, zip_help.stderr
    assert "--checkpoint" in zip_help.stdout and "--check" in zip_help.stdout and "--real" in zip_help.stdout


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_reach_a_file_and_heading():
    """Each relative link of the README and docs/ names a file that exists and, with #anchor, one of its headings."""
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", page.read_text(encoding="utf-8")):
            target = next(t for t in target if t)
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif fragment and fragment not in {anchor(h) for h in re.findall(r"^#+ (.+)$", file.read_text(
                    encoding="utf-8"), re.M)}:
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
