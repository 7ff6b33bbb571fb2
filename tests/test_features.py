"""The FID Inception extractor through its real weight-loading path, with randomly initialised weights saved to files."""
import numpy as np
import pytest
import torch
from unittest import mock

from kit.errors import UserError
from kit.metrics import features


def test_features_match_pytorch_fid_get_activations(inception_weights, tmp_path):
    """Same numbers as pytorch-fid's own pipeline (PNG files -> ToTensor -> InceptionV3 -> pool3)."""
    from PIL import Image
    from pytorch_fid import inception
    from pytorch_fid.fid_score import get_activations
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 64, 64), dtype=np.uint8)
    images[1] = images[1] // 4                                   # a darker one
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(image.transpose(1, 2, 0)).save(files[-1])
    state_dict = torch.load(inception_weights, weights_only=True)
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state_dict):
        model = inception.InceptionV3([3]).eval()
    expected = get_activations(files, model, batch_size=3, dims=2048, device="cpu", num_workers=0)

    extractor = features.InceptionFeatures(inception_weights, device="cpu", batch_size=2, resize="pytorch-fid")
    got = extractor(images)
    assert got.shape == (3, 2048) and got.dtype == np.float32
    assert extractor.dim == 2048 and extractor.name == "inception-pool3"
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert np.abs(got[0] - got[1]).max() > 1e-3 * np.abs(got).max()    # different images, different features


def test_weights_from_env_and_fingerprint_follows_content(inception_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("DOGKIT_INCEPTION_WEIGHTS", str(inception_weights))
    assert features.find_inception_weights() == inception_weights
    state_dict = torch.load(inception_weights, weights_only=True)
    state_dict["fc.bias"][0] += 1                                   # one weight differs
    other = tmp_path / "other.pth"
    torch.save(state_dict, other)
    assert features.file_digest(other) != features.file_digest(inception_weights)
    copy = tmp_path / "copy.pth"
    copy.write_bytes(inception_weights.read_bytes())
    assert features.file_digest(copy) == features.file_digest(inception_weights)


def test_weights_found_in_pytorch_fid_hub_cache(inception_weights, tmp_path, monkeypatch):
    monkeypatch.delenv("DOGKIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = tmp_path / "checkpoints" / features.FID_WEIGHTS_NAME
    cached.parent.mkdir()
    cached.write_bytes(inception_weights.read_bytes())
    assert features.find_inception_weights() == cached


def test_missing_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.delenv("DOGKIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(path):
        raise OSError("no internet")
    monkeypatch.setattr(features, "download_inception_weights", offline)
    with pytest.raises(UserError, match="--inception-weights.*Kaggle kernel: attach it as a dataset") as e:
        features.InceptionFeatures(device="cpu")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="nowhere.pth not found"):
        features.find_inception_weights(tmp_path / "nowhere.pth")


@pytest.mark.parametrize("damage", ["wrong_keys", "wrong_shape", "not_torch", "not_a_dict"])
def test_weights_that_do_not_match_give_one_line(inception_weights, tmp_path, damage):
    path = tmp_path / f"{damage}.pth"
    if damage == "not_torch":
        path.write_text("<html>404</html>")
    elif damage == "not_a_dict":
        torch.save(torch.zeros(3), path)
    else:
        state_dict = torch.load(inception_weights, weights_only=True)
        if damage == "wrong_keys":
            state_dict = {"backbone." + key: value for key, value in state_dict.items()}
        else:
            state_dict["Mixed_7c.branch_pool.conv.weight"] = torch.zeros(3, 3, 1, 1)
        torch.save(state_dict, path)
    with pytest.raises(UserError, match=str(path)) as e:
        features.InceptionFeatures(path, device="cpu")
    assert "\n" not in str(e.value) and len(str(e.value)) < 600
    print(e.value)
