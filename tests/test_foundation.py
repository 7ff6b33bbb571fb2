"""The CLI dispatcher, TrainConfig flags, durations, atomic files and checkpoint errors."""
import argparse
import subprocess
import sys

import pytest
import torch

from kit import checkpoint, config
from kit.__main__ import COMMANDS, run
from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "kit", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_its_flags(name):
    out = subprocess.run([sys.executable, "-m", "kit", name, "--help"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"usage: python -m kit {name}") and "--" in out.split("options:")[1]


@pytest.mark.parametrize("text,seconds", [("8h30m", 30600), ("45m", 2700), ("90s", 90), ("1h", 3600),
                                          ("1.5h", 5400), ("120", 120), ("2m30s", 150)])
def test_parse_duration(text, seconds):
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "8x", "h", "5m10", "ten minutes"])
def test_parse_duration_rejects(text):
    with pytest.raises(UserError, match="8h30m"):
        config.parse_duration(text)


def test_flags_round_trip_every_field():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    cfg = config.from_args(parser.parse_args(["--lr-g", "0.001", "--no-channels-last", "--model", "cgan",
                                              "--batch-size", "32", "--ema", "0"]))
    assert (cfg.lr_g, cfg.channels_last, cfg.model, cfg.batch_size, cfg.ema) == (0.001, False, "cgan", 32, 0.0)
    assert config.from_dict({**config.asdict(cfg), "from_a_newer_version": 1}) == cfg


def test_user_error_is_one_line(capsys):
    def handler(args):
        raise UserError("x.zip is not a zip: download it again")
    assert run(handler, None) == 2
    assert capsys.readouterr().err == "error: x.zip is not a zip: download it again\n"


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_refuse_overwrite(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(UserError, match="--force"):
        refuse_overwrite(tmp_path / "f", force=False)
    refuse_overwrite(tmp_path / "f", force=True)
    refuse_overwrite(tmp_path / "g", force=False)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    state = {"config": config.asdict(config.TrainConfig()), "G": {"w": torch.arange(3.0)}, "step": 7}
    checkpoint.save(tmp_path / "last.pt", state)
    back = checkpoint.load(tmp_path / "last.pt")
    assert back["step"] == 7 and torch.equal(back["G"]["w"], torch.arange(3.0))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for path, match in [(tmp_path / "junk.pt", "not readable"), (tmp_path / "none.pt", "does not exist")]:
        with pytest.raises(UserError, match=match):
            checkpoint.load(path)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not written by"):
        checkpoint.load(tmp_path / "other.pt")


def test_device_defaults_fill_only_fields_left_at_zero():
    cfg = config.TrainConfig(d_width=24)
    for device_type in ("cpu", "cuda"):
        resolved = config.for_device(cfg, device_type)
        table = config.MODEL_DEFAULTS["dcgan"][device_type]
        assert (resolved.g_width, resolved.lr_g, resolved.lr_d) == (table["g_width"], table["lr_g"], table["lr_d"])
        assert resolved.d_width == 24 and resolved.batch_size == table["batch_size"]   # batch 0: by model and device
        assert config.for_device(config.TrainConfig(batch_size=32), device_type).batch_size == 32   # given: kept
    assert config.for_device(cfg, "mps") == config.for_device(cfg, "cpu")


def test_model_defaults_fill_loss_and_betas_per_model_and_keep_what_was_given():
    dcgan = config.for_device(config.TrainConfig(), "cpu")
    assert (dcgan.loss, dcgan.beta1, dcgan.beta2, dcgan.g_width) == ("bce", 0.5, 0.999, 16)
    biggan = config.for_device(config.TrainConfig(model="biggan"), "cuda")
    assert (biggan.loss, biggan.beta1, biggan.lr_g, biggan.lr_d, biggan.g_width, biggan.d_width) == \
        ("hinge", 0.0, 1e-4, 4e-4, 32, 64)
    given = config.for_device(config.TrainConfig(loss="lsgan", beta1=0.0, lr_g=3e-4), "cpu")
    assert (given.loss, given.beta1, given.lr_g) == ("lsgan", 0.0, 3e-4)      # an explicit 0 beta stays 0
    for device_type in ("cpu", "cuda"):   # the augmentation policy by model (issue 21's photo-set rows)
        assert config.for_device(config.TrainConfig(), device_type).augment == "translation,color"
        assert config.for_device(config.TrainConfig(model="biggan"), device_type).augment == "translation,cutout"
        assert config.for_device(config.TrainConfig(model="biggan", augment="none"), device_type).augment == "none"
    biggan = {"cpu": config.for_device(config.TrainConfig(model="biggan"), "cpu"),
              "cuda": config.for_device(config.TrainConfig(model="biggan"), "cuda")}
    assert [(c.ada_target, c.ada_kimg) for c in biggan.values()] == [(0.6, 5), (0.0, 500)]   # ADA: CPU only
    assert [c.lecam for c in biggan.values()] == [0.3, 0.3]                                   # LeCam: biggan's
    assert config.for_device(config.TrainConfig(), "cuda").lecam == 0.0
    assert config.for_device(config.TrainConfig(model="biggan", lecam=0.0), "cuda").lecam == 0.0   # off
    assert config.for_device(config.TrainConfig(lecam=0.1), "cpu").lecam == 0.1                    # on for dcgan
    assert config.for_device(config.TrainConfig(), "cpu").ada_target == 0.0
    assert config.for_device(config.TrainConfig(model="biggan", ada_target=0.0), "cpu").ada_target == 0.0   # off
    assert config.for_device(config.TrainConfig(model="biggan", ada_target=0.6), "cuda").ada_target == 0.6   # on
    for device_type, made in biggan.items():   # a checkpoint from before ADA and LeCam resumes without them
        saved = {k: v for k, v in config.asdict(made).items() if k not in ("ada_target", "ada_kimg", "lecam")}
        resumed = config.for_device(config.from_dict(saved), device_type)
        assert (resumed.ada_target, resumed.ada_kimg, resumed.lecam) == (0.0, 500, 0.0)
