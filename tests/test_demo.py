"""kit.demo: the whole job on the built-in demo data, scored through the real Inception loading path."""
import json
import zipfile

import torch

from kit import demo
from kit.__main__ import main as kit_main
from kit.package import check_zip


def test_demo_end_to_end(tmp_path, monkeypatch, capsys, inception_weights):
    """MLP model (the cheapest tail on a CPU), random FID-Inception weights from a file, 8 images scored."""
    threads = torch.get_num_threads()   # --threads 1 is process-wide: give the others their threads back
    try:
        run_demo(tmp_path, monkeypatch, capsys, inception_weights)
    finally:
        torch.set_num_threads(threads)


def run_demo(tmp_path, monkeypatch, capsys, weights):
    """The body of test_demo_end_to_end."""
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--budget", "40s", "--model", "mlp", "--device", "cpu", "--threads", "1",
            "--score-n", "8",
            "--inception-weights", str(weights)]
    assert kit_main(args) == 0
    printed = capsys.readouterr().out
    print(printed[printed.index("demo finished in"):])
    summary = printed[printed.index("demo finished in"):]
    assert "passes the competition's check" in summary
    assert "score on 8 generated vs 8 real images" in summary and "MiFID" in summary
    assert check_zip(out / "images.zip") == []
    with zipfile.ZipFile(out / "images.zip") as zf:
        assert len(zf.namelist()) == 10000
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["event"] == "end" and rows[-1]["wall_s"] <= 40
    assert kit_main(args) == 2   # a second run refuses to overwrite the first
    assert "--force" in capsys.readouterr().err
    skipped = demo.score(out / "images.zip", out / "data", 8, tmp_path / "nope.pth", "cpu")
    assert skipped.startswith("score skipped: Inception weights") and "nope.pth" in skipped
