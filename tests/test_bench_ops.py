"""bench/bench_ops.py counts a training step's operations and its optimisers' share; biggan's step stays below what it
dispatched before the EMA update became multi-tensor (4,812 at commit 2b373d6)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_ops  # noqa: E402


def test_a_step_is_counted_with_its_optimisers_share_and_biggan_stays_lean(tmp_path):
    totals = {}
    for model in ("dcgan", "biggan"):
        total, optimisers = bench_ops.step_operations(model, g_width=8, d_width=8, batch_size=2)   # the same count
        assert 0 < optimisers < total
        totals[model] = total
    assert totals["dcgan"] < totals["biggan"] < 4_812, totals
    bench_ops.main(["--models", "dcgan", "--results", str(tmp_path / "ops.md")])
    table = (tmp_path / "ops.md").read_text()
    assert table.startswith("# Operations a training step dispatches") and f"| dcgan | {totals['dcgan']:,} |" in table
