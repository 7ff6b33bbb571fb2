"""Feature extractors, the scorer's seam: uint8 images N×C×H×W -> float32 N×D, with a name, a dim and a weights
fingerprint. Two leaderboard networks: the public one's FID Inception (pool3, 2048-d) and the private one's
NASNet-A Large (final_layer/Mean, 4032-d); each resizes as the organisers did unless told otherwise."""
import functools
import glob
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kit.device import resolve_device
from kit.errors import UserError
from kit.files import file_hash
from kit.metrics.resize import tf1_resize_bilinear

RESIZES = ("organisers", "pytorch-fid")   # TF1 legacy bilinear as the competition's scorer, or pytorch-fid's
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"   # pytorch-fid's port of the TF FID Inception
WEIGHTS_HELP = (f"pass --inception-weights FILE or set DOGKIT_INCEPTION_WEIGHTS to pytorch-fid's {FID_WEIGHTS_NAME} "
                "(in a Kaggle kernel: attach it as a dataset), or run once with internet to download it into "
                "the torch hub cache")
NASNET_HELP = ("pass --nasnet-weights FILE or set DOGKIT_NASNET_WEIGHTS to timm's nasnetalarge.tf_in1k weights "
               "(on a machine with internet: python -c \"import timm; timm.create_model('nasnetalarge', "
               "pretrained=True)\" puts them in timm's cache; in a Kaggle kernel: attach the file as a dataset)")


def given_weights(weights, env: str, what: str, help_text: str):
    """The weights file named by the flag or the environment variable (which must exist), or None."""
    path = weights or os.environ.get(env)
    if path and not Path(path).is_file():
        raise UserError(f"{what} weights {path} not found: {help_text}")
    return Path(path) if path else None


def find_inception_weights(weights=None) -> Path:
    """The FID Inception weights: the given path, $DOGKIT_INCEPTION_WEIGHTS, pytorch-fid's hub cache, or a download."""
    given = given_weights(weights, "DOGKIT_INCEPTION_WEIGHTS", "Inception", WEIGHTS_HELP)
    if given:
        return given
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


def find_nasnet_weights(weights=None, download=False) -> Path:
    """NASNet-A Large weights: the given path, $DOGKIT_NASNET_WEIGHTS, or timm's caches (Hugging Face or torch hub),
    into which timm downloads them first when `download` is asked and nothing was found."""
    given = given_weights(weights, "DOGKIT_NASNET_WEIGHTS", "NASNet", NASNET_HELP)
    if given:
        return given
    hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    patterns = [str(Path(hf_home) / "hub" / "models--timm--nasnetalarge.tf_in1k" / "snapshots" / "*" / "model.*"),
                str(Path(torch.hub.get_dir()) / "checkpoints" / "nasnetalarge-*.pth")]
    found = sorted(f for pattern in patterns for f in glob.glob(pattern))
    if not found and download:
        try:
            download_nasnet_weights()
        except Exception as e:
            raise UserError(f"no NASNet-A Large weights ({type(e).__name__} while downloading): "
                            f"{NASNET_HELP}") from None
        return find_nasnet_weights(weights)
    if not found:
        raise UserError(f"no NASNet-A Large weights: {NASNET_HELP}")
    return Path(found[0])


def download_nasnet_weights() -> None:
    """Let timm fetch nasnetalarge.tf_in1k into its cache (Hugging Face's, where find_nasnet_weights looks)."""
    import timm
    timm.create_model("nasnetalarge.tf_in1k", pretrained=True)


def load_state_dict(path: Path, help_text: str) -> dict:
    """A state dict from a torch or safetensors file; anything else is one line naming the file."""
    try:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import load_file
            state_dict = load_file(str(path))
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path} is not a weights file ({type(e).__name__}): {help_text}") from None
    if not isinstance(state_dict, dict):
        raise UserError(f"{path} holds a {type(state_dict).__name__}, not a state dict: {help_text}")
    return state_dict


def load_into(build, path: Path, help_text: str, what: str) -> torch.nn.Module:
    """build()'s network holding the state dict from `path` (strict), in eval mode; a mismatch is one line. The
    network is built on the meta device, so no time goes into initialising weights the file replaces."""
    state_dict = load_state_dict(path, help_text)
    with torch.device("meta"):
        model = build()
    try:
        model.load_state_dict(state_dict, assign=True)
    except RuntimeError as e:
        problem = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"{path} does not match {what} ({problem[:200]}): {help_text}") from None
    return model.eval()


def fid_inception_net() -> torch.nn.Module:
    """pytorch-fid's FID Inception structure (torchvision's Inception3 with the TF graph's blocks), untrained."""
    import torchvision
    from pytorch_fid import inception as fid
    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    for name, block in (("Mixed_5b", fid.FIDInceptionA(192, pool_features=32)),
                        ("Mixed_5c", fid.FIDInceptionA(256, pool_features=64)),
                        ("Mixed_5d", fid.FIDInceptionA(288, pool_features=64)),
                        ("Mixed_6b", fid.FIDInceptionC(768, channels_7x7=128)),
                        ("Mixed_6c", fid.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6d", fid.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6e", fid.FIDInceptionC(768, channels_7x7=192)),
                        ("Mixed_7b", fid.FIDInceptionE_1(1280)), ("Mixed_7c", fid.FIDInceptionE_2(2048))):
        setattr(net, name, block)
    return net


def random_inception_state_dict(seed=0) -> dict:
    """A randomly initialised FID-Inception state dict (for tests and timing), He-initialised so activations stay
    moderate; it has the keys and shapes of pytorch-fid's weights file."""
    generator = torch.Generator().manual_seed(seed)
    net = fid_inception_net()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
    return net.state_dict()


def file_digest(path, size=16) -> str:
    """Hex blake2b digest of a file's bytes."""
    return file_hash(path, hashlib.blake2b(digest_size=size))


@functools.lru_cache(maxsize=8)
def weights_digest(path: str, size: int, mtime_ns: int) -> str:
    """file_digest of a weights file as it was at (size, mtime): each is read once per process, not per network."""
    return file_digest(path)


def check_resize(resize: str) -> str:
    """The resize name, or one line listing the known ones."""
    if resize not in RESIZES:
        raise UserError(f"--resize {resize} is not known: use {' or '.join(RESIZES)}")
    return resize


class Extractor:
    """Batches uint8 images through `network_input` and `network` on one device."""
    name, dim = "", 0

    def __init__(self, path: Path, resize: str, device, batch_size, progress):
        self.resize = check_resize(resize)
        self.device = resolve_device(device)
        self.progress = progress
        self.batch_size = batch_size
        stat = Path(path).stat()
        digest = weights_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        self.fingerprint = f"{self.name}-{self.resize}-{digest}"

    sizes = ()   # the organisers' resizes, in order; the last is the network's input size

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """Features of N×3×S×S float images in [-1, 1] at the network's input size S."""
        raise NotImplementedError

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W uint8 of any size -> the network's input: resized as the organisers (each of `sizes` in turn,
        TF1 bilinear) or as pytorch-fid (one torch bilinear resize), scaled to [-1, 1]."""
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = x.float() / 255
        if self.resize == "organisers":
            for size in self.sizes:
                x = tf1_resize_bilinear(x, size)
        else:
            x = torch.nn.functional.interpolate(x, size=(self.sizes[-1],) * 2, mode="bilinear", align_corners=False)
        return 2 * x - 1

    @torch.no_grad()
    def __call__(self, images) -> np.ndarray:
        """uint8 N×C×H×W (numpy or torch, 1 or 3 channels) -> float32 N×dim numpy."""
        images = torch.as_tensor(images)
        out = np.empty((len(images), self.dim), np.float32)
        for start in tqdm(range(0, len(images), self.batch_size), desc=self.name, unit="batch",
                          disable=not self.progress, leave=False):
            x = self.network_input(images[start:start + self.batch_size].to(self.device, non_blocking=True))
            out[start:start + len(x)] = self.network(x).flatten(1).cpu().numpy()
        return out

    @torch.no_grad()
    def of_originals(self, arrays, total: int) -> np.ndarray:
        """Features of H×W×3 uint8 arrays of any (mixed) sizes, each resized on its own, batched after."""
        rows, batch = [], []
        for array in tqdm(arrays, total=total, desc=f"{self.name} (real)", unit="img", disable=not self.progress,
                          leave=False):
            image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].to(self.device)
            batch.append(self.network_input(image))
            if len(batch) == self.batch_size:
                rows.append(self.network(torch.cat(batch)).flatten(1).cpu().numpy())
                batch = []
        if batch:
            rows.append(self.network(torch.cat(batch)).flatten(1).cpu().numpy())
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)


class InceptionFeatures(Extractor):
    """The public leaderboard's network: FID Inception pool3 (2048-d) at 299×299, input scaled to [-1, 1]."""
    name, dim, sizes = "inception-pool3", 2048, (64, 299)   # the scorer fed 64×64 images; the graph resized to 299

    def __init__(self, weights=None, device="auto", batch_size=None, progress=False, resize="organisers"):
        path = find_inception_weights(weights)
        super().__init__(path, resize, device, batch_size, progress)
        net = load_into(fid_inception_net, path, WEIGHTS_HELP, "pytorch-fid's FID Inception")
        self.layers = torch.nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, torch.nn.MaxPool2d(3, 2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, torch.nn.MaxPool2d(3, 2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d,
            net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, torch.nn.AdaptiveAvgPool2d(1)).to(self.device)
        self.batch_size = batch_size or (500 if self.device.type == "cuda" else 50)

    def network(self, x):
        return self.layers(x)


class NASNetFeatures(Extractor):
    """The private leaderboard's network: NASNet-A Large, the mean over space of the last cell's ReLU (4032-d,
    TF-slim's final_layer/Mean) at 331×331, input scaled to [-1, 1]; timm's port of the TF-slim weights."""
    name, dim, sizes = "nasnet-final-mean", 4032, (331,)    # every image straight to 331, real ones from full size

    def __init__(self, weights=None, device="auto", batch_size=None, progress=False, resize="organisers"):
        import timm
        path = find_nasnet_weights(weights)
        super().__init__(path, resize, device, batch_size, progress)
        net = load_into(lambda: timm.create_model("nasnetalarge", pretrained=False, num_classes=1000), path,
                        NASNET_HELP, "timm's nasnetalarge")
        self.net = net.to(self.device)
        self.batch_size = batch_size or (200 if self.device.type == "cuda" else 8)

    def network(self, x):
        return self.net.forward_features(x).mean((2, 3))
