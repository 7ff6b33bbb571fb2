"""A benchmark's table appended to a markdown file under bench/results/: a heading naming the run (UTC time, device,
torch, commit and whether the tree had uncommitted changes, load before and after), the command line, the table."""
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def append_run(path, title: str, device: str, details: str, load_before: float, lines: list) -> None:
    """Append one run's section to `path` (starting the file with `title` when it is new) and say so."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    head = (f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {device}, torch {torch.__version__}, "
            f"commit {commit.stdout.strip()}{' + uncommitted changes' if dirty else ''}, "
            f"{details + ', ' if details else ''}load {load_before:.1f}–{os.getloadavg()[0]:.1f}")
    command = f"`python bench/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:]) + "`"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a") as f:
        if new:
            f.write(f"# {title}\n\n")
        f.write("\n".join([head, "", command, "", *lines, "", ""]))
    print(f"appended to {path}")
