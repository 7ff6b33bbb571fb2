"""Quality benchmark on the UCI digits or natural-photo crops (code: the quality/ package beside this script).

    python bench/quality.py                                  # kit-dcgan, baseline, kit-cgan, kit-biggan at 2 and 5 min
    python bench/quality.py --budgets 20m --configs kit-cgan,kit-biggan
    python bench/quality.py --budgets 90s --configs "" --custom "w32=--g-width 32 --d-width 32"   # any kit flags
    python bench/quality.py --table                          # rewrite the table and plots from past runs
    python bench/quality.py --set photos --budgets 5m,20m    # the photo-crop set: its own records and table
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's kit, before an installed one
from quality.runner import main  # noqa: E402

if __name__ == "__main__":
    main()
