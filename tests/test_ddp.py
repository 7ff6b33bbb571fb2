"""DistributedDataParallel on CPU: two gloo processes train in step (ADA's statistic reduced over them) and only rank 0
writes."""
import json
import os
import socket

import torch
import torch.multiprocessing as mp

from kit import checkpoint
from kit import jobs, train as train_module
from kit.config import TrainConfig


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, port, cfg, out):
    """One torchrun-like process: train, then save the final weights this rank held."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    snapshots = []
    to_cpu = jobs.to_cpu

    def recording_to_cpu(obj):
        copied = to_cpu(obj)
        if isinstance(obj, dict) and "G" in obj:
            snapshots.append(copied)
        return copied

    jobs.to_cpu = recording_to_cpu
    train_module.train(cfg)
    torch.save({k: snapshots[-1][k] for k in ("G", "D", "G_ema", "step", "regularisers")}, out / f"rank{rank}.pt")


def test_two_processes_stay_in_step_and_rank_0_writes(demo_cache, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(demo_cache), out=str(run), model="cgan", loss="wgan-gp", g_width=4, d_width=4,
                      z_dim=16, batch_size=8, n_images=10, max_steps=4, log_every=2, device="cpu", threads=1,
                      checkpoint_every="1h", sample_every="1h", lecam=0.3, cr=10.0, ada_target=0.6, ada_kimg=1)
    mp.spawn(worker, args=(free_port(), cfg, tmp_path), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 4
    for key in ("G", "D", "G_ema"):  # the ranks draw different batches: only DDP keeps them equal
        for name, tensor in ranks[0][key].items():
            if "running_" not in name:  # batch-norm statistics: synced at each forward, then updated from own batch
                assert torch.equal(tensor, ranks[1][key][name]), (key, name)
    ada = [r["regularisers"]["ada"] for r in ranks]
    assert ada[0]["p"] == ada[1]["p"] and ada[0]["signs"].sum() == ada[1]["signs"].sum() == 0   # adjusted at step 4
    saved = checkpoint.load(run / "last.pt")
    assert saved["step"] == 4 and torch.equal(saved["G"]["to_image.weight"], ranks[0]["G"]["to_image.weight"])
    start = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2
    assert sorted(p.name for p in run.iterdir()) == ["images.zip", "last.pt", "losses.png", "metrics.jsonl", "samples"]
