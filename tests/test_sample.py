"""Sampling from a checkpoint (EMA weights, truncation, breed labels, CLI) and the PIL plots."""
import numpy as np
import pytest
import torch
from PIL import Image

from kit import checkpoint, models, plot, sample
from kit.__main__ import main as kit_main
from kit.config import TrainConfig, asdict
from kit.errors import UserError
from kit.sample import generate, load_generator, sampling_options, to_uint8, truncated_noise

CLASSES = ["pug", "beagle", "corgi", "husky"]


def make_checkpoint(path, model="cgan", label_counts=(0, 0, 10, 30)):
    """A checkpoint dict as `kit train` writes it, with G and G_ema deliberately different."""
    cfg = TrainConfig(model=model, z_dim=16, g_width=4, d_width=4)
    torch.manual_seed(0)
    G, D = models.build(cfg, (3, 32, 32), len(CLASSES))
    G_ema, _ = models.build(cfg, (3, 32, 32), len(CLASSES))
    state = {"config": asdict(cfg), "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
             "step": 3, "classes": CLASSES, "label_counts": list(label_counts), "image_shape": (3, 32, 32)}
    checkpoint.save(path, state)
    return G, G_ema


def test_generate_uses_the_ema_weights(tmp_path):
    G, G_ema = make_checkpoint(tmp_path / "last.pt")
    images, labels = generate(tmp_path / "last.pt", 10, seed=3)
    z = truncated_noise(10, 16, 0.0, torch.Generator().manual_seed(3))
    assert torch.equal(images, to_uint8(G_ema.eval()(z, labels)))
    assert not torch.equal(images, to_uint8(G.eval()(z, labels)))
    assert images.dtype == torch.uint8 and images.shape == (10, 3, 32, 32)
    again, _ = generate(checkpoint.load(tmp_path / "last.pt"), 10, seed=3)  # a loaded dict works too
    assert torch.equal(images, again)


def test_the_generator_samples_in_the_runs_memory_format_and_in_chunks(tmp_path, monkeypatch):
    make_checkpoint(tmp_path / "last.pt")

    def channels_last(G):
        weight = next(m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)).weight
        return weight.is_contiguous(memory_format=torch.channels_last)

    assert channels_last(load_generator(tmp_path / "last.pt", "cpu")[0])
    whole, labels = generate(tmp_path / "last.pt", 25, seed=2)
    monkeypatch.setitem(sample.CHUNK, "cpu", 7)   # 25 images in chunks of 7, 7, 7 and 4: the same images
    chunked, again = generate(tmp_path / "last.pt", 25, seed=2)
    assert torch.equal(labels, again) and (chunked.int() - whole.int()).abs().max() <= 1
    assert chunked.is_contiguous() and chunked.shape == (25, 3, 32, 32)
    state = checkpoint.load(tmp_path / "last.pt")
    state["config"]["channels_last"] = False
    assert not channels_last(load_generator(state, "cpu")[0])


def test_labels_follow_the_training_frequencies(tmp_path):
    make_checkpoint(tmp_path / "last.pt", label_counts=(0, 0, 10, 30))
    _, labels = generate(tmp_path / "last.pt", 2000)
    counts = np.bincount(labels.numpy(), minlength=4)
    assert counts[0] == counts[1] == 0
    assert counts[3] / 2000 == pytest.approx(0.75, abs=0.04)


def test_breed_by_index_or_name_and_bad_breeds(tmp_path):
    make_checkpoint(tmp_path / "last.pt")
    assert generate(tmp_path / "last.pt", 4, labels=1)[1].tolist() == [1, 1, 1, 1]
    assert generate(tmp_path / "last.pt", 4, labels="corgi")[1].tolist() == [2, 2, 2, 2]
    assert generate(tmp_path / "last.pt", 4, labels="3")[1].tolist() == [3, 3, 3, 3]
    for bad in (7, "poodle"):
        with pytest.raises(UserError, match="breed"):
            generate(tmp_path / "last.pt", 4, labels=bad)
    make_checkpoint(tmp_path / "plain.pt", model="dcgan")
    assert generate(tmp_path / "plain.pt", 4)[1] is None
    with pytest.raises(UserError, match="--breed"):
        generate(tmp_path / "plain.pt", 4, labels=1)


def test_standing_stats_with_a_label_per_image(tmp_path):
    """A label per image (as bench/quality asks for digit i mod 10) and standing statistics: the statistics batches
    draw from the asked labels, and the images get exactly the labels asked."""
    make_checkpoint(tmp_path / "last.pt")
    asked = np.arange(300) % 4
    images, labels = generate(tmp_path / "last.pt", 300, labels=asked, standing_stats=2)
    assert labels.tolist() == asked.tolist() and images.shape == (300, 3, 32, 32)
    plain, _ = generate(tmp_path / "last.pt", 300, labels=asked)
    assert not torch.equal(images, plain)            # the re-collected statistics changed the images


def test_truncation_redraws_large_values():
    z = truncated_noise(5000, 8, 0.5, torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    assert z.std() == pytest.approx(0.28, abs=0.02)  # a normal truncated at ±0.5σ has σ ≈ 0.28
    assert truncated_noise(100, 8, 0.0, torch.Generator().manual_seed(0)).abs().max() > 1.5


def test_sample_cli_writes_a_grid_and_refuses_to_overwrite(tmp_path, capsys):
    make_checkpoint(tmp_path / "last.pt")
    grid = tmp_path / "grid.png"
    argv = ["sample", "--checkpoint", str(tmp_path / "last.pt"), "--n", "12", "--out", str(grid), "--breed", "beagle"]
    assert kit_main(argv) == 0
    assert Image.open(grid).size == (4 * 34 + 2, 3 * 34 + 2)  # 12 images, 4 per row, 2 px gaps
    assert kit_main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert kit_main(["sample", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "g.png")]) == 2


def test_class_balance_draws_breeds_the_run_never_saw(tmp_path):
    make_checkpoint(tmp_path / "last.pt", label_counts=(0, 0, 10, 30))
    _, by_frequency = generate(tmp_path / "last.pt", 40, seed=1)
    _, balanced = generate(tmp_path / "last.pt", 42, seed=1, class_balance=True)
    assert set(by_frequency.tolist()) <= {2, 3}
    assert sorted(np.bincount(balanced.numpy(), minlength=4).tolist()) == [10, 10, 11, 11]
    _, again = generate(tmp_path / "last.pt", 42, seed=1, class_balance=True)
    _, other = generate(tmp_path / "last.pt", 42, seed=2, class_balance=True)
    assert torch.equal(balanced, again) and not torch.equal(balanced, other)    # shuffled with the seed


def test_sampling_options_default_to_the_run_and_flags_override():
    assert sampling_options({"config": {}}) == {"standing_stats": 0, "class_balance": False}   # older checkpoints
    run = {"config": {"standing_stats": 8, "class_balance": True}}
    assert sampling_options(run) == {"standing_stats": 8, "class_balance": True}
    assert sampling_options(run, 0, False) == {"standing_stats": 0, "class_balance": False}


def test_sample_cli_standing_stats_and_class_balance(tmp_path):
    make_checkpoint(tmp_path / "last.pt", model="biggan")
    base = ["sample", "--checkpoint", str(tmp_path / "last.pt"), "--n", "8", "--class-balance"]
    assert kit_main([*base, "--out", str(tmp_path / "plain.png")]) == 0
    assert kit_main([*base, "--out", str(tmp_path / "stats.png"), "--standing-stats", "2"]) == 0
    images, _ = generate(tmp_path / "last.pt", 8, standing_stats=2, class_balance=True)
    plot.save_grid(images, tmp_path / "expected.png", 3)
    read = {name: np.asarray(Image.open(tmp_path / f"{name}.png")) for name in ("plain", "stats", "expected")}
    assert np.array_equal(read["stats"], read["expected"]) and not np.array_equal(read["plain"], read["stats"])


def test_save_grid_places_every_image(tmp_path):
    images = np.zeros((5, 3, 4, 6), np.uint8)
    for i in range(5):
        images[i] = 40 * (i + 1)
    plot.save_grid(images, tmp_path / "g.png", nrow=3, pad=2)
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (2 * 6 + 2, 3 * 8 + 2, 3)
    for i in range(5):
        r, k = divmod(i, 3)
        assert (grid[2 + 6 * r:6 + 6 * r, 2 + 8 * k:8 + 8 * k] == 40 * (i + 1)).all()
    assert (grid[8:12, 18:24] == 0).all()  # the sixth cell stays empty
    plot.save_grid(torch.full((2, 1, 4, 4), 200, dtype=torch.uint8), tmp_path / "grey.png", nrow=2)
    assert Image.open(tmp_path / "grey.png").mode == "L"


def test_line_chart_draws_each_series(tmp_path):
    xs = list(range(50))
    plot.save_line_chart({"D": (xs, [np.sin(x / 5) for x in xs]), "G": (xs, [1 + x / 50 for x in xs]),
                          "bad": ([0, 1], [float("nan"), float("inf")])}, tmp_path / "c.png", "step", "loss", "t")
    pixels = np.asarray(Image.open(tmp_path / "c.png")).reshape(-1, 3)
    assert pixels.shape[0] == 800 * 500
    for colour in plot.COLOURS[:2]:
        assert (pixels == colour).all(1).sum() > 100  # each line leaves many pixels of its colour
