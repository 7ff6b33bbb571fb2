"""Fallbacks instead of lost runs, each injected on the CPU: a compile failure, a CUDA-graph capture failure, an fp16
NaN storm and an out-of-memory error in the first steps each end in a valid zip with the fallback named in the log
and recorded in the checkpoint; a chart or a grid that cannot be drawn is one line and never ends a run."""
import pytest
import torch

from kit import checkpoint, models
from kit.errors import UserError
from kit.package import check_zip
from kit.train import train
from test_train import config, keep_torch_threads, metrics  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def fallbacks(out):
    """The fallback rows of a run's metrics.jsonl."""
    return [r for r in metrics(out) if r.get("event") == "fallback"]


def ends_well(out, steps, capsys):
    """The run reached `steps`, zipped 16 images that pass the competition's check, and said "fallback:"; its
    checkpoint."""
    state = checkpoint.load(out / "last.pt")
    assert state["step"] == steps
    assert check_zip(out / "images.zip", n_images=16) == []
    assert "fallback: " in capsys.readouterr().out
    return state


def test_a_compile_failure_goes_on_eagerly(demo_cache, tmp_path, monkeypatch, capsys):
    class Broken(torch.nn.Module):
        def forward(self, *args):
            raise RuntimeError("backend='inductor' raised: CalledProcessError: gcc failed")

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: Broken())
    train(config(tmp_path / "run", demo_cache, max_steps=6, compile=True))
    state = ends_well(tmp_path / "run", 6, capsys)
    [row] = fallbacks(tmp_path / "run")
    assert row["what"] == "eager" and row["step"] == 0 and "torch.compile failed (RuntimeError" in row["message"]
    assert state["fallbacks"] == [{k: row[k] for k in ("step", "what", "message")}]
    assert state["config"]["compile"] is False


def test_a_cuda_graph_capture_failure_goes_on_eagerly(demo_cache, tmp_path, monkeypatch, capsys):
    """The graph is forced on on the CPU, where its first stream fails as a capture that cannot start would."""
    from kit import train as train_module
    monkeypatch.setattr(train_module, "graph_allowed", lambda *args: True)
    train(config(tmp_path / "run", demo_cache, max_steps=5, cuda_graph=True))
    state = ends_well(tmp_path / "run", 5, capsys)
    [row] = fallbacks(tmp_path / "run")
    assert row["what"] == "eager" and "the CUDA graph failed" in row["message"]
    assert state["config"]["cuda_graph"] is False
    assert all(not g["capturable"] for opt in ("opt_G", "opt_D") for g in state[opt]["param_groups"])


def test_an_fp16_nan_storm_goes_on_in_fp32(demo_cache, tmp_path, monkeypatch, capsys):
    """NaN losses whenever fp16 is on, from step 3: one rollback (learning rates halved), then the second in a row
    switches the run to fp32 at the learning rates it had, and it trains on to the end."""
    from kit import train as train_module

    class Fp16Overflows(train_module.Trainer):
        def step(self):
            super().step()
            if self.dtype is torch.float16 and self.step_count >= 3:
                self.acc.fill_(float("nan"))

    monkeypatch.setattr(train_module, "Trainer", Fp16Overflows)
    train(config(tmp_path / "run", demo_cache, max_steps=8, precision="fp16"))
    state = ends_well(tmp_path / "run", 8, capsys)
    rows = metrics(tmp_path / "run")
    events = [r["event"] for r in rows if "event" in r]
    assert events == ["start", "rollback", "fallback", "end"], events
    [row] = fallbacks(tmp_path / "run")
    assert row["what"] == "precision" and row["message"].endswith("going on in fp32")
    assert state["config"]["precision"] == "fp32" and state["scaler"]["G"] == {}   # no grad scaler in fp32
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(5e-4)           # not halved by the storm


def test_out_of_memory_in_the_first_steps_halves_the_batch(demo_cache, tmp_path, monkeypatch, capsys):
    """Batches over 8 do not fit: 32 → 16 → 8, said twice, and the run trains on at 8 (stored for a resume)."""
    build = models.build

    def build_small_memory(*args, **kwargs):
        G, D = build(*args, **kwargs)
        G.register_forward_pre_hook(lambda module, inputs: oom() if inputs[0].shape[0] > 8 else None)
        return G, D

    monkeypatch.setattr(models, "build", build_small_memory)
    train(config(tmp_path / "run", demo_cache, max_steps=5))
    state = ends_well(tmp_path / "run", 5, capsys)
    rows = fallbacks(tmp_path / "run")
    assert [r["what"] for r in rows] == ["batch", "batch"]
    assert "out of memory at batch 32" in rows[0]["message"] and rows[1]["message"].endswith("batch 8 per process")
    assert state["config"]["batch_size"] == 8


def oom():
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_at_batch_1_is_one_line(demo_cache, tmp_path, monkeypatch):
    build = models.build

    def build_no_memory(*args, **kwargs):
        G, D = build(*args, **kwargs)
        G.register_forward_pre_hook(lambda *_: oom())
        return G, D

    monkeypatch.setattr(models, "build", build_no_memory)
    with pytest.raises(UserError, match="--batch-size 1 does not fit"):
        train(config(tmp_path / "run", demo_cache, max_steps=3, batch_size=4))
    assert [r["what"] for r in fallbacks(tmp_path / "run")] == ["batch", "batch"]   # 4 → 2 → 1, then no further


def test_a_chart_or_grid_that_cannot_be_drawn_is_one_line(demo_cache, tmp_path, monkeypatch, capsys):
    """As in a kernel whose Python lacked matplotlib: the run still ends with its zip and says what it skipped."""
    from kit import jobs, train as train_module

    def no_matplotlib(*args, **kwargs):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(train_module, "save_line_chart", no_matplotlib)
    monkeypatch.setattr(jobs, "save_grid", no_matplotlib)
    train(config(tmp_path / "run", demo_cache, max_steps=3))
    out = capsys.readouterr().out
    assert "the loss chart skipped: ImportError: No module named 'matplotlib'" in out
    assert "the sample grid skipped: ImportError" in out
    assert check_zip(tmp_path / "run" / "images.zip", n_images=16) == []
    assert metrics(tmp_path / "run")[-1]["event"] == "end"
