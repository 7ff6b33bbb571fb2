"""Feature extractors for scoring: uint8 images N×C×H×W -> float32 N×D, with a name and a weights fingerprint."""
import hashlib
import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from tqdm import tqdm

from kit.device import resolve_device
from kit.errors import UserError

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"   # pytorch-fid's port of the TF FID Inception
WEIGHTS_HELP = (f"pass --inception-weights FILE or set DOGKIT_INCEPTION_WEIGHTS to pytorch-fid's {FID_WEIGHTS_NAME} "
                "(in a Kaggle kernel: attach it as a dataset), or run once with internet to download it into "
                "the torch hub cache")


def find_inception_weights(weights=None) -> Path:
    """The FID Inception weights: the given path, $DOGKIT_INCEPTION_WEIGHTS, pytorch-fid's hub cache, or a download."""
    path = weights or os.environ.get("DOGKIT_INCEPTION_WEIGHTS")
    if path:
        if not Path(path).is_file():
            raise UserError(f"Inception weights {path} not found: {WEIGHTS_HELP}")
        return Path(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME
    if not cached.is_file():
        try:
            download_inception_weights(cached)
        except Exception as e:
            raise UserError(f"no FID Inception weights ({type(e).__name__} while downloading): {WEIGHTS_HELP}") from None
    return cached


def download_inception_weights(path: Path) -> None:
    """Fetch pytorch-fid's FID Inception weights to `path` (where pytorch-fid itself would put them)."""
    from pytorch_fid.inception import FID_WEIGHTS_URL
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(path), progress=True)


def load_fid_inception(path: Path) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (pool3, resize to 299, [0,1] -> [-1,1]) holding the weights from `path`."""
    from pytorch_fid import inception
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path} is not a torch weights file ({type(e).__name__}): {WEIGHTS_HELP}") from None
    if not isinstance(state_dict, dict):
        raise UserError(f"{path} holds a {type(state_dict).__name__}, not a state dict: {WEIGHTS_HELP}")
    try:   # pytorch-fid always fetches its weights by URL; hand it ours instead
        with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state_dict):
            return inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    except RuntimeError as e:
        problem = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"{path} does not match pytorch-fid's FID Inception ({problem[:200]}): {WEIGHTS_HELP}") from None


def random_inception_state_dict(seed=0) -> dict:
    """A randomly initialised FID-Inception state dict (for tests and timing), built without pytorch-fid's download:
    torchvision's Inception3 has the same parameter names and shapes; He-initialised so activations stay moderate."""
    import torchvision
    from pytorch_fid import inception
    generator = torch.Generator().manual_seed(seed)
    donor = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    for module in donor.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: donor.state_dict()):
        return inception.fid_inception_v3().state_dict()


def file_digest(path, size=16) -> str:
    """Hex blake2b digest of a file's bytes."""
    digest = hashlib.blake2b(digest_size=size)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class InceptionFeatures:
    """FID Inception pool3 features (2048-d) of uint8 images, batched on the GPU when there is one."""
    name = "inception-pool3"
    dim = 2048

    def __init__(self, weights=None, device="auto", batch_size=None, progress=False):
        path = find_inception_weights(weights)
        self.device = resolve_device(device)
        self.model = load_fid_inception(path).to(self.device)
        self.batch_size = batch_size or (500 if self.device.type == "cuda" else 50)
        self.progress = progress
        self.fingerprint = f"{self.name}-{file_digest(path)}"

    @torch.no_grad()
    def __call__(self, images) -> np.ndarray:
        """uint8 N×C×H×W (numpy or torch, 1 or 3 channels) -> float32 N×2048 numpy."""
        images = torch.as_tensor(images)
        out = np.empty((len(images), self.dim), np.float32)
        for start in tqdm(range(0, len(images), self.batch_size), desc=self.name, unit="batch",
                          disable=not self.progress, leave=False):
            x = images[start:start + self.batch_size].to(self.device, non_blocking=True)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            out[start:start + len(x)] = self.model(x.float() / 255)[0].flatten(1).cpu().numpy()
        return out
