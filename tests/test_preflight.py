"""Preflight: the pure go/stop decision on P100-, T4-, L4- and H100-like machines, and the kernel stopping early."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from kit.kernel import build
from kit.kernel.preflight import Facts, decide, runs_on

# torch 2.8's CUDA 12.8 wheels (Kaggle's image): no sm_50/sm_60 any more; the L4 (sm_89) runs the sm_86 code
CU128 = ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")
BUILD = {"torch_version": "2.8.0+cu128", "cuda_build": "12.8", "arch_list": CU128, "kernel": "dcgan"}
P100 = ("Tesla P100-PCIE-16GB", (6, 0))
T4 = ("Tesla T4", (7, 5))
L4 = ("NVIDIA L4", (8, 9))
H100 = ("NVIDIA H100 80GB HBM3", (9, 0))


def test_p100_like_stops_with_the_device_its_capability_the_build_and_the_fix():
    decision = decide(Facts(**BUILD, gpus=(P100,)))
    assert not decision.go
    line = decision.message
    assert "\n" not in line and "Tesla P100-PCIE-16GB" in line and "sm_60" in line
    assert "torch 2.8.0+cu128 (CUDA 12.8)" in line and "sm_70 sm_75" in line
    assert "python -m kit kernel build dcgan --accelerator NvidiaTeslaT4" in line


@pytest.mark.parametrize("gpus, procs, words", [
    ((T4, T4), 2, "2 DDP processes over nccl, one per GPU, fp16 autocast with a grad scaler (no bf16 before sm_80)"),
    ((L4,), 1, "1 process, bf16 autocast"),
    ((H100,), 1, "1 process, bf16 autocast"),
])
def test_t4_l4_h100_like_go_with_one_process_per_gpu(gpus, procs, words):
    decision = decide(Facts(**BUILD, gpus=gpus))
    assert decision.go and decision.device == "cuda" and decision.procs == procs
    assert decision.gpus == tuple(range(procs))
    assert f"{len(gpus)} × {gpus[0][0]} (sm_{gpus[0][1][0]}{gpus[0][1][1]})" in decision.message
    assert decision.message.endswith(words)


def test_what_the_run_asks_for():
    one_t4 = decide(Facts(**BUILD, gpus=(T4, T4), procs=1))
    assert one_t4.go and one_t4.procs == 1 and one_t4.gpus == (0,)
    assert decide(Facts(**BUILD, gpus=(T4, T4), device="cuda:1")).gpus == (1,)
    assert decide(Facts(**BUILD, gpus=(T4, T4), precision="fp32")).message.endswith("fp32 (asked for)")
    separate = decide(Facts(**BUILD, gpus=(T4, T4), separate=True))
    assert separate.procs == 2 and separate.gpus == (0, 1)
    assert "run torch 2.8.0+cu128 (CUDA 12.8): 2 separate runs, one process per GPU, fp16" in separate.message
    too_many = decide(Facts(**BUILD, gpus=(T4, T4), procs=3))
    assert not too_many.go and "DOGKIT_PROCS to at most 2" in too_many.message
    assert "cuda:0 .. cuda:0" in decide(Facts(**BUILD, gpus=(T4,), device="cuda:1")).message
    assert not decide(Facts(**BUILD, gpus=(T4,), device="tpu")).go
    mixed = decide(Facts(**BUILD, gpus=(T4, P100)))
    assert not mixed.go and mixed.message.startswith("preflight: GPU 1 Tesla P100")


def test_no_gpu_stops_unless_the_run_asks_for_the_cpu():
    stop = decide(Facts("2.8.0+cpu"))
    assert not stop.go and "no GPU in this kernel" in stop.message and "CUDA none" in stop.message
    assert """DOGKIT_TRAIN='{"device": "cpu"}'""" in stop.message and "--accelerator NvidiaTeslaT4" in stop.message
    cpu = decide(Facts("2.8.0+cpu", device="cpu"))
    assert cpu.go and cpu.device == "cpu" and cpu.procs == 1 and "no DDP" in cpu.message
    gloo = decide(Facts(**BUILD, gpus=(P100,), device="cpu", procs=2))
    assert gloo.go and gloo.procs == 2 and "DDP over gloo" in gloo.message and "1 GPU(s) stay idle" in gloo.message
    assert "2 process(es) (separate runs)" in decide(Facts("2.8.0+cpu", device="cpu", procs=2, separate=True)).message


@pytest.mark.parametrize("arch, capability, runs", [
    ("sm_75", (7, 5), True), ("sm_86", (8, 9), True), ("sm_86", (8, 0), False), ("sm_70", (7, 5), True),
    ("sm_90", (10, 0), False), ("sm_90a", (9, 0), True), ("sm_90a", (9, 1), False), ("compute_90", (12, 0), True),
    ("compute_90", (8, 9), False), ("sm_100f", (10, 3), True), ("sm_120", (6, 0), False), ("gfx90a", (9, 0), False),
])
def test_which_compiled_code_runs_on_which_gpu(arch, capability, runs):
    assert runs_on(arch, capability) is runs


def run_script(tmp_path, facts: dict):
    """The dcgan script, alone in a folder, deciding from faked facts (as on that hardware)."""
    script = tmp_path / "src" / "script.py"
    script.parent.mkdir()
    shutil.copy(build.KERNELS_DIR / "dcgan" / "script.py", script)
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGKIT_")}
    env.update(TMPDIR=str(tmp_path / "tmp"), DOGKIT_KAGGLE_ROOT=str(tmp_path / "nothing-here"),
               DOGKIT_PREFLIGHT_FACTS=json.dumps(facts))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_p100_like_kernel_stops_within_seconds_before_preparing(tmp_path):
    done = run_script(tmp_path, {**BUILD, "gpus": [P100]})
    assert done.returncode == 1, done.stdout + done.stderr
    stops = re.findall(r"^\[ *([\d.]+) s\] preflight: (GPU 0 .*)$", done.stdout, re.M)
    assert len(stops) == 1 and "sm_60" in stops[0][1] and "--accelerator NvidiaTeslaT4" in stops[0][1]
    assert float(stops[0][0]) < 5.0   # the kernel's own clock, from its first line
    assert "prepare:" not in done.stdout and "stopped before preparing anything" in done.stdout
    assert [p.name.startswith("dogkit-src-") for p in (tmp_path / "tmp").iterdir()] == [True]


def test_a_t4_like_kernel_goes_on(tmp_path):
    done = run_script(tmp_path, {**BUILD, "gpus": [T4, T4]})
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("preflight: 2 × Tesla T4 (sm_75) run torch 2.8.0+cu128 (CUDA 12.8): 2 separate runs, one process per "
            "GPU") in done.stdout   # the kernels' default, --gpus runs


def test_a_torch_or_python_older_than_the_floor_stops():
    old_torch = decide(Facts(**{**BUILD, "torch_version": "2.2.2+cu121"}, gpus=(T4,)))
    assert not old_torch.go and "torch 2.2.2+cu121 is older than 2.3" in old_torch.message
    old_python = decide(Facts(**BUILD, gpus=(T4,), python_version="3.8.18"))
    assert not old_python.go and "Python 3.8.18 is older than 3.9" in old_python.message
    assert decide(Facts(**{**BUILD, "torch_version": "2.3.1"}, gpus=(T4,), python_version="3.9.18")).go
