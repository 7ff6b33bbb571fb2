"""bench/bench_ops.py counts a training step's operations, its optimisers' share and its views; biggan's step stays
below what it dispatched with torch's spectral norm (4,759 at commit 8eae140)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_ops  # noqa: E402


def test_a_step_is_counted_with_its_optimisers_share_and_biggan_stays_lean(tmp_path):
    totals = {}
    for model in ("dcgan", "biggan"):
        total, optimisers, views = bench_ops.step_operations(model, g_width=8, d_width=8, batch_size=2)   # the same
        assert 0 < optimisers < total and 0 < views < total - optimisers
        totals[model] = total
    assert totals["dcgan"] < totals["biggan"] < 4_759, totals
    bench_ops.main(["--models", "dcgan", "--results", str(tmp_path / "ops.md")])
    table = (tmp_path / "ops.md").read_text()
    assert table.startswith("# Operations a training step dispatches") and f"| dcgan | {totals['dcgan']:,} |" in table
