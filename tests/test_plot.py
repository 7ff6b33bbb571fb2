"""kit.plot: sample grids are the input images in place; line charts are real PNGs with each series drawn."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from kit import plot


def test_grid_tiles_are_the_input_images_in_row_order(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 3, 5, 4), dtype=np.uint8)
    plot.save_grid(torch.from_numpy(images), tmp_path / "grid.png", nrow=3, pad=1)
    grid = Image.open(tmp_path / "grid.png")
    assert grid.mode == "RGB" and grid.size == (3 * (4 + 1) + 1, 3 * (5 + 1) + 1)
    pixels = np.asarray(grid)
    for i, image in enumerate(images):
        r, k = divmod(i, 3)
        top, left = 1 + r * 6, 1 + k * 5
        assert np.array_equal(pixels[top:top + 5, left:left + 4], image.transpose(1, 2, 0))
    assert (pixels[0] == 0).all() and (pixels[:, 0] == 0).all()     # the padding is black
    assert (pixels[13:18, 6:15] == 0).all()                          # the two cells after the 7th image stay empty


def test_grid_of_one_channel_images_is_greyscale(tmp_path):
    images = np.arange(2 * 1 * 3 * 3, dtype=np.uint8).reshape(2, 1, 3, 3) * 10
    plot.save_grid(images, tmp_path / "grey.png", nrow=2, pad=0)
    grid = Image.open(tmp_path / "grey.png")
    assert grid.mode == "L" and grid.size == (6, 3)
    assert np.array_equal(np.asarray(grid), np.concatenate([images[0, 0], images[1, 0]], axis=1))


def test_grid_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "g.png"
    path.write_bytes(b"old")
    plot.save_grid(np.full((1, 3, 2, 2), 9, np.uint8), path, nrow=1, pad=0)
    assert np.asarray(Image.open(path)).tolist() == [[[9, 9, 9]] * 2] * 2
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


def colour_counts(path):
    """{rgb: pixel count} of a PNG."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    return {tuple(int(v) for v in c): int(n) for c, n in zip(colours, counts)}


def test_line_chart_draws_each_series_in_its_colour(tmp_path):
    xs = list(range(200))
    noise = np.random.default_rng(0).standard_normal(200)
    series = {"D": (xs, list(1 + 0.2 * noise)), "G": (xs, [2 + x / 100 for x in xs]), "short": ([1, 2, 3], [0, 3, 1])}
    plot.save_line_chart(series, tmp_path / "c.png", "step", "loss", "losses", size=(640, 400))
    image = Image.open(tmp_path / "c.png")
    assert image.size == (640, 400) and image.mode == "RGB"
    counts = colour_counts(tmp_path / "c.png")
    assert max(counts, key=counts.get) == (255, 255, 255)             # a white background
    for colour in plot.COLOURS[:3]:
        assert counts.get(colour, 0) > 50                             # each line leaves many pixels of its colour
    assert counts.get(plot.COLOURS[3], 0) == 0                         # and no fourth series is drawn


def test_line_chart_skips_non_finite_and_non_positive_points_on_log_axes(tmp_path):
    series = {"fid": ([0, 10, 20, 40], [float("nan"), 400.0, 0.0, 50.0]), "none": ([1, 2], [float("inf"), -1.0])}
    plot.save_line_chart(series, tmp_path / "log.png", "steps", "digit-FID", "t", log_x=True, log_y=True)
    counts = colour_counts(tmp_path / "log.png")
    assert counts.get(plot.COLOURS[0], 0) > 20 and counts.get(plot.COLOURS[1], 0) < 5


def test_smoothing_removes_the_start_up_bias():
    assert plot.smoothed([5.0] * 4, 0.9) == pytest.approx([5.0] * 4)
    assert plot.smoothed([0.0, 10.0], 0.5) == pytest.approx([0.0, 10 * 0.5 / 0.75])


def test_importing_kit_plot_does_not_import_matplotlib():
    code = "import sys, kit.plot; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def evaluation_rows():
    """Five evaluation rows with both leaderboards, as kit.jobs logs them."""
    rows = []
    for i, step in enumerate(range(0, 500, 100)):
        row = {"event": "evaluation", "step": step, "seconds": 1.0}
        for board, threshold in (("public", 0.1), ("private", 0.25)):
            d = 0.3 - 0.02 * i
            row[board] = {"fid": 200.0 - 30 * i, "d": d, "mifid": (200.0 - 30 * i) / (d if d < threshold else 1),
                          "threshold": threshold, "n": 32}
        rows.append(row)
    return rows


def test_progress_chart_draws_both_leaderboards_their_thresholds_and_the_selected_step(tmp_path):
    rows = evaluation_rows()
    plot.save_progress_chart(rows, 300, tmp_path / "progress.png", "r3gan")
    counts = colour_counts(tmp_path / "progress.png")
    assert Image.open(tmp_path / "progress.png").size == (800, 900)
    assert counts.get(plot.COLOURS[0], 0) > 200 and counts.get(plot.COLOURS[1], 0) > 200   # public, private
    assert counts.get(plot.COLOURS[2], 0) == 0
    plot.save_progress_chart(rows, None, tmp_path / "unmarked.png", "r3gan")
    assert colour_counts(tmp_path / "unmarked.png").get((0, 0, 0), 0) < counts.get((0, 0, 0), 0)   # the marker
    public_only = [{"step": row["step"], "public": row["public"]} for row in rows]
    plot.save_progress_chart(public_only, 300, tmp_path / "public.png")
    assert colour_counts(tmp_path / "public.png").get(plot.COLOURS[1], 0) == 0
