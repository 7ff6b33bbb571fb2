"""Preflight, the first thing a kernel does: can this torch run on the GPUs it was given, and how many processes?

`decide(facts)` is a pure function of what torch reports (its version and CUDA build, the architectures it was
compiled for, the visible GPUs) and of what the run asks for; `read_facts` asks torch, and `probe` runs one tiny
synchronised operation on each GPU, because a GPU can be visible and still have no kernel image for this torch.
"""
import json
import os
import platform
import re
from dataclasses import dataclass

FIX_ACCELERATOR = "NvidiaTeslaT4"   # two T4s (sm_75), which every recent Kaggle torch build supports
TORCH_FLOOR = (2, 3)     # the newest API kernel code calls is torch.amp.GradScaler(device), new in torch 2.3
PYTHON_FLOOR = (3, 9)    # checked by tests/test_kernels.py: the inlined sources parse as Python 3.9
FAKE_FACTS_ENV = "DOGKIT_PREFLIGHT_FACTS"   # JSON of Facts fields: decide as if on that hardware (tests)


@dataclass(frozen=True)
class Facts:
    """What the decision reads: torch's build, the visible GPUs, and what the run asks for."""
    torch_version: str
    cuda_build: str = ""          # torch.version.cuda; "" for a CPU-only build
    arch_list: tuple = ()         # torch.cuda.get_arch_list(): "sm_75", "sm_90a", "compute_90", ...
    gpus: tuple = ()              # (name, (major, minor)) for each visible GPU
    device: str = "auto"          # the run's TrainConfig.device: auto, cpu, cuda or cuda:N
    precision: str = "auto"       # the run's TrainConfig.precision
    procs: int = 0                # processes asked for ($DOGKIT_PROCS); 0: one per usable GPU, 1 on the CPU
    kernel: str = "NAME"          # the kernel's name, for the rebuild command in the fix
    python_version: str = ""      # platform.python_version(); "" skips the check
    separate: bool = False        # the kernel trains one run per process (--gpus runs), not one DDP run


@dataclass(frozen=True)
class Decision:
    """Go or stop, on which device type with how many processes, and the one line that says why."""
    go: bool
    device: str                   # "cuda" or "cpu"
    procs: int
    message: str
    gpus: tuple = ()              # indices of the GPUs the processes use


def runs_on(arch: str, capability: tuple) -> bool:
    """Whether code compiled for `arch` runs on a GPU of this capability."""
    # sm_XY (machine code) runs on the same major version from minor Y on; sm_XYa on XY alone; compute_XY (PTX,
    # compiled by the driver at load) on XY and every later capability
    kind, _, version = arch.partition("_")
    specific = version.endswith("a")
    digits = version.rstrip("af")
    if kind not in ("sm", "compute") or not digits.isdigit() or len(digits) < 2:
        return False
    built = (int(digits[:-1]), int(digits[-1]))
    if kind == "compute":
        return tuple(capability) >= built
    if specific:
        return tuple(capability) == built
    return capability[0] == built[0] and capability[1] >= built[1]


def sm(capability: tuple) -> str:
    """(7, 5) -> "sm_75"."""
    return f"sm_{capability[0]}{capability[1]}"


def precision_words(precision: str, capability: tuple) -> str:
    """What autocast does on this GPU: auto is bf16 from sm_80 (L4, A100, H100), fp16 with a grad scaler before."""
    if precision != "auto":
        return f"{precision} (asked for)"
    if tuple(capability) >= (8, 0):
        return "bf16 autocast"
    return "fp16 autocast with a grad scaler (no bf16 before sm_80)"


def version(text: str) -> tuple:
    """"2.8.0+cu128" -> (2, 8); "3.12.1" -> (3, 12)."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def decide(facts: Facts) -> Decision:
    """Go or stop with one line: a GPU this torch cannot run is named with its capability, the build and the fix."""
    build = f"torch {facts.torch_version} (CUDA {facts.cuda_build or 'none: a CPU-only build'})"
    fix = (f"rebuild with `python -m kit kernel build {facts.kernel} --accelerator {FIX_ACCELERATOR}` "
           f"(or NvidiaL4) and push again")
    floors = (("torch", facts.torch_version, TORCH_FLOOR), ("Python", facts.python_version, PYTHON_FLOOR))
    for name, found, floor in floors:
        if found and version(found) < floor:
            return Decision(False, "cpu", 0, f"preflight: {name} {found} is older than {'.'.join(map(str, floor))}, "
                                             f"the oldest the kit runs on: run the kernel on Kaggle's latest image "
                                             f"(\"docker_image_pinning_type\": \"latest\" in kernel-metadata.json)")
    device = facts.device
    if device == "cpu":
        procs = facts.procs or 1
        idle = f"; the {len(facts.gpus)} GPU(s) stay idle" if facts.gpus else ""
        how = "no DDP" if procs == 1 else "separate runs" if facts.separate else "DDP over gloo"
        return Decision(True, "cpu", procs, f"preflight: the run asks for the CPU: {procs} process(es) ({how}), "
                                            f"{build}{idle}")
    if device not in ("auto", "cuda") and not device.startswith("cuda:"):
        return Decision(False, "cpu", 0, f"preflight: device {device!r} is not auto, cpu, cuda or cuda:N: "
                                         f"fix the kernel's train options")
    if not facts.gpus:
        return Decision(False, "cpu", 0,
                        f"preflight: no GPU in this kernel ({build} sees none): {fix}, or run on the CPU "
                        f"with DOGKIT_TRAIN='{{\"device\": \"cpu\"}}'")
    indices = list(range(len(facts.gpus)))
    if device.startswith("cuda:"):
        index = device.partition(":")[2]
        if not index.isdigit() or int(index) >= len(facts.gpus):
            return Decision(False, "cpu", 0, f"preflight: device {device} asked for, but the kernel has "
                                             f"{len(facts.gpus)} GPU(s): use cuda:0 .. cuda:{len(facts.gpus) - 1}")
        indices = [int(index)]
    for i in indices:
        name, capability = facts.gpus[i]
        if not any(runs_on(arch, capability) for arch in facts.arch_list):
            return Decision(False, "cuda", 0,
                            f"preflight: GPU {i} {name} has capability {sm(capability)}, which {build} has no "
                            f"kernels for (built for {' '.join(facts.arch_list) or 'nothing'}): {fix}")
    procs = facts.procs or len(indices)
    if procs > len(indices):
        return Decision(False, "cuda", 0, f"preflight: {procs} processes asked for, but {len(indices)} usable "
                                          f"GPU(s): set DOGKIT_PROCS to at most {len(indices)}")
    name, capability = facts.gpus[indices[0]]
    how = ("1 process" if procs == 1 else f"{procs} separate runs, one process per GPU" if facts.separate else
           f"{procs} DDP processes over nccl, one per GPU")
    return Decision(True, "cuda", procs,
                    f"preflight: {len(indices)} × {name} ({sm(capability)}) run {build}: {how}, "
                    f"{precision_words(facts.precision, capability)}", tuple(indices[:procs]))


def read_facts(device="auto", precision="auto", procs=0, kernel="NAME", separate=False) -> Facts:
    """The Facts of this machine as torch reports them, or of the hardware ${FAKE_FACTS_ENV} describes."""
    asked = {"device": device, "precision": precision, "procs": procs, "kernel": kernel,
             "python_version": platform.python_version(), "separate": separate}
    fake = os.environ.get(FAKE_FACTS_ENV)
    if fake:
        values = json.loads(fake)
        values["arch_list"] = tuple(values.get("arch_list", ()))
        values["gpus"] = tuple((name, tuple(capability)) for name, capability in values.get("gpus", ()))
        return Facts(**{**values, **asked})
    import torch
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = tuple((torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i))) for i in range(n))
    return Facts(torch.__version__, torch.version.cuda or "", tuple(torch.cuda.get_arch_list()) if n else (), gpus,
                 **asked)


def probe(gpus, kernel="NAME") -> str:
    """"" when a tiny synchronised op gives the right answer on each GPU index in `gpus`, else the one line."""
    import torch
    for i in gpus:
        try:
            x = torch.arange(4.0, device=f"cuda:{i}")
            value = float((x * x).sum())   # .item() synchronises: a missing kernel image fails here
            torch.cuda.synchronize(i)
        except RuntimeError as e:   # torch.AcceleratorError is a RuntimeError
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return (f"preflight: GPU {i} {torch.cuda.get_device_name(i)} failed a tiny CUDA op ({first}): rebuild "
                    f"with `python -m kit kernel build {kernel} --accelerator {FIX_ACCELERATOR}` and push again")
        if value != 14.0:
            return f"preflight: GPU {i} {torch.cuda.get_device_name(i)} computed 0²+1²+2²+3² = {value}, not 14"
    return ""
