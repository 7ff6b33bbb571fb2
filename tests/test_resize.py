"""The organisers' resize (TF1 resize_bilinear, align_corners=False) against values worked out by hand."""
import math

import numpy as np
import pytest
import torch

from kit.metrics.resize import tf1_resize_bilinear


def loop_resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1's legacy bilinear written as plain loops over one H×W channel (float64)."""
    in_h, in_w = image.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        y = i * in_h / out_h
        y0 = math.floor(y)
        y1, wy = min(y0 + 1, in_h - 1), y - y0
        for j in range(out_w):
            x = j * in_w / out_w
            x0 = math.floor(x)
            x1, wx = min(x0 + 1, in_w - 1), x - x0
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * wx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * wx
            out[i, j] = top + (bottom - top) * wy
    return out


def test_2x2_to_3x3_by_hand():
    # rows and columns: src = j * 2/3 -> 0, 2/3, 4/3; the last clamps to pixel 1 (no half-pixel centres)
    x = torch.tensor([[[[0.0, 10.0], [20.0, 30.0]]]])
    expected = torch.tensor([[0.0, 20 / 3, 10.0],
                             [40 / 3, 20.0, 70 / 3],
                             [20.0, 80 / 3, 30.0]])
    torch.testing.assert_close(tf1_resize_bilinear(x, 3)[0, 0], expected, rtol=0, atol=1e-5)


def test_shrinking_skips_pixels_without_antialiasing():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert tf1_resize_bilinear(x, 2)[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]   # pixels 0 and 2, no averaging


def test_same_size_is_the_identity():
    x = torch.rand(2, 3, 64, 64) * 255
    assert torch.equal(tf1_resize_bilinear(x, 64), x)


def test_64_to_299_matches_the_loops_and_differs_from_torch_half_pixel():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64)).astype(np.float64)
    got = tf1_resize_bilinear(torch.from_numpy(image)[None, None], 299)[0, 0].double().numpy()
    np.testing.assert_allclose(got, loop_resize(image, 299, 299), rtol=0, atol=1e-3)
    # a hand-checked point: output 150 -> src 150 * 64 / 299 = 32.1070..., between input 32 and 33
    w = 150 * 64 / 299 - 32
    row = image[32, 0] + (image[33, 0] - image[32, 0]) * w
    assert got[150, 0] == pytest.approx(row, abs=1e-3)
    torch_resized = torch.nn.functional.interpolate(torch.from_numpy(image)[None, None], size=(299, 299),
                                                    mode="bilinear", align_corners=False)[0, 0].numpy()
    assert np.abs(torch_resized - got).max() > 1.0      # torch uses half-pixel centres: not the leaderboard's


def test_rectangular_sizes():
    x = torch.rand(1, 3, 7, 5)
    got = tf1_resize_bilinear(x, (4, 9))
    assert got.shape == (1, 3, 4, 9)
    np.testing.assert_allclose(got[0, 1].numpy(), loop_resize(x[0, 1].double().numpy(), 4, 9), atol=1e-5)
