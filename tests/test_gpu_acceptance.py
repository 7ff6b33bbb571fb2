"""bench/gpu_acceptance.py: its dry run (the whole GPU list on the CPU at toy sizes) passes and writes its table and
record, and its harness reports a failing, hanging or falling-back item by name instead of stopping."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_acceptance  # noqa: E402


# The kernel in the sandbox and the two-process start run in tests/test_kernel_sandbox.py already: the dry run here
# leaves them out (about 30 s of CI), and --items is what a dry run on a developer's machine could narrow the same way.
COVERED_ELSEWHERE = ("kernel in the sandbox", "nccl 2 processes")


def test_the_dry_run_passes_every_item_and_writes_its_record(tmp_path):
    out = tmp_path / "out"
    chosen = [name for name, *_ in gpu_acceptance.ITEMS if name not in COVERED_ELSEWHERE]
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_acceptance.py"), "--dry-run", "--out", str(out),
                           "--work", str(tmp_path / "work"), "--items", ",".join(chosen)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record, = [json.loads(line) for line in (out / "gpu.jsonl").read_text().splitlines()]
    items = {item["name"]: item for item in record["items"]}
    assert list(items) == chosen and record["failed"] == []
    assert record["dry_run"] and record["torch"] == torch.__version__ and len(record["commit"]) >= 7
    assert {item["status"] for item in items.values()} == {"passed"}
    for model in ("dcgan", "cgan", "biggan"):
        for precision, dtype in (("bf16", "bfloat16"), ("fp16", "float16")):
            figures = items[f"train {model} {precision}"]["figures"]
            assert figures["precision"] == dtype and figures["steps"] == 2 and figures["fallbacks"] == []
    assert items["sample"]["figures"]["images"] == 64 and items["features"]["figures"]["nasnet_images_per_s"] > 0
    assert 0 < items["metric"]["figures"]["d"] <= 1 and items["quality"]["figures"]["steps"] > 0
    assert [row[:3] for row in items["bench_train"]["figures"]["rows"]][:2] == [
        ["notebook DCGAN (ImageFolder, 2 workers, fp32)", "8", "eager"],
        ["kit train --model dcgan --precision fp16", "8", "eager"]]
    eager = items["biggan fp16 eager"]["figures"]
    assert eager["precision"] == "float16" and eager["cuda_graph"] is False and eager["steps"] == 2
    table = (out / "gpu.md").read_text()
    assert all(f"| {name} | passed |" in table for name in items) and "dry run" in table
    assert not (ROOT / "bench" / "results" / "gpu.md").exists() or "dry run" not in (
        ROOT / "bench" / "results" / "gpu.md").read_text()


def wrote_a_fallback(ctx):
    """An item whose run logged a fallback row."""
    return {"steps": 3, "fallbacks": gpu_acceptance.fallbacks([{"step": 1}, {"event": "fallback",
                                                                             "message": "compile failed: eager"}])}


def fails(ctx):
    raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")


def hangs(ctx):
    time.sleep(600)


def test_failed_hung_and_fallen_back_items_are_named_and_the_rest_still_run(tmp_path, monkeypatch, capsys):
    items = [("device", gpu_acceptance.item_device, 60, ()), ("fails", fails, 60, ()), ("hangs", hangs, 60, ()),
             ("falls back", wrote_a_fallback, 60, ("fails",)), ("skips", lambda ctx: {"skipped": "one GPU"}, 60, ()),
             ("passes", lambda ctx: {"images": 1}, 60, ())]   # light: the 3 s limit is for "hangs", not a busy CPU
    monkeypatch.setattr(gpu_acceptance, "ITEMS", items)
    monkeypatch.setattr(gpu_acceptance, "DRY_TIMEOUT_S", 3)
    monkeypatch.setattr(gpu_acceptance, "preload", lambda: None)
    start = time.monotonic()
    assert gpu_acceptance.main(["--dry-run", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 1
    assert time.monotonic() - start < 30
    record, = [json.loads(line) for line in (tmp_path / "out" / "gpu.jsonl").read_text().splitlines()]
    status = {item["name"]: item["status"] for item in record["items"]}
    assert status == {"device": "passed", "fails": "failed", "hangs": "failed", "falls back": "fallback",
                      "skips": "skipped", "passes": "passed"}
    assert record["failed"] == ["fails", "hangs", "falls back (fallback)"]
    errors = {item["name"]: item.get("error") for item in record["items"]}
    assert errors["fails"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert errors["hangs"].startswith("timed out after 3 s")
    assert "Traceback" in (tmp_path / "work" / "logs" / "fails.log").read_text()
    assert "FAILED: fails, hangs, falls back (fallback)" in capsys.readouterr().err
    table = (tmp_path / "out" / "gpu.md").read_text()
    assert "| falls back | fallback |" in table and "fallback: compile failed: eager" in table


def sleeps(name):
    """An item that sleeps 1 s and leaves its start and end times in the scratch folder."""
    def item(ctx):
        start = time.time()
        time.sleep(1)
        (ctx.work / f"{name}.times").write_text(f"{start} {time.time()}")
        return {}
    return item


def test_on_a_gpu_path_items_share_it_two_at_a_time_and_figure_items_run_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")   # a GPU run sets it; restored after the test
    names = ["train a", "train b", "metric", "train c", "train d"]
    monkeypatch.setattr(gpu_acceptance, "ITEMS", [(name, sleeps(name), 60, ()) for name in names])
    assert gpu_acceptance.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 0
    times = {name: [float(t) for t in (tmp_path / "work" / f"{name}.times").read_text().split()] for name in names}

    def overlap(a, b):
        return times[a][0] < times[b][1] and times[b][0] < times[a][1]

    assert overlap("train a", "train b") and overlap("train c", "train d")
    assert not any(overlap("metric", other) for other in names if other != "metric")
    assert times["train b"][1] <= times["metric"][0] <= times["train c"][0]
