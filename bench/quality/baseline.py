"""The baseline: the pytorch/examples DCGAN as a notebook writes it (ImageFolder of JPEGs, DataLoader with 2 workers,
fp32, Sigmoid + BCELoss, Adam 2e-4 / 0.5, batch 64, width 64, N(0, 0.02) init, no EMA, no augmentation).

One loop serves both benchmarks: bench/quality trains it for seconds and scores snapshots, bench/bench_train times it.
"""
import copy
import time

import torch
import torch.nn as nn

NZ = 100
DESCRIPTION = "pytorch/examples dcgan in notebook style: ImageFolder, DataLoader with 2 workers, fp32"
SETTINGS = "width 64/64, lr 0.0002/0.0002, bce, batch 64, EMA 0, augment none"


def baseline_models(nz=NZ, width=64):
    """The pytorch/examples DCGAN generator and discriminator at 64×64 with the N(0, 0.02) init."""
    G = nn.Sequential(
        nn.ConvTranspose2d(nz, width * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 8), nn.ReLU(True),
        nn.ConvTranspose2d(width * 8, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(True),
        nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),
        nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
        nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 4, width * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    for m in list(G.modules()) + list(D.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return G, D


def notebook_loader(folder, batch=64):
    """ImageFolder of `folder` resized and centre-cropped to 64, in [-1, 1], shuffled by a DataLoader with 2 workers."""
    import torchvision.datasets as dset
    import torchvision.transforms as T
    data = dset.ImageFolder(str(folder), transform=T.Compose([
        T.Resize(64), T.CenterCrop(64), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]))
    return torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=2)


def notebook_steps(folder, device, batch=64, seed=0, nz=NZ):
    """The notebook's training loop, epoch after epoch: yields (G, images in the batch) after each D and G step."""
    torch.manual_seed(seed)
    loader = notebook_loader(folder, batch)
    G, D = baseline_models(nz)
    G, D = G.to(device), D.to(device)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    step = 0
    while True:
        for real, _ in loader:
            real = real.to(device)
            b = real.size(0)
            D.zero_grad()
            loss_real = criterion(D(real).view(-1), torch.ones(b, device=device))
            loss_real.backward()
            fake = G(torch.randn(b, nz, 1, 1, device=device))
            loss_fake = criterion(D(fake.detach()).view(-1), torch.zeros(b, device=device))
            loss_fake.backward()
            opt_d.step()
            G.zero_grad()
            loss_g = criterion(D(fake).view(-1), torch.ones(b, device=device))
            loss_g.backward()
            opt_g.step()
            if step % 50 == 0:
                (loss_real + loss_fake).item(), loss_g.item()   # the notebook prints its losses every 50 steps
            step += 1
            yield G, b


def train_baseline(folder, seconds, device, snapshot_times, seed=0, nz=NZ):
    """Train the notebook DCGAN for `seconds` of loop time; return steps and G snapshots [(seconds, step, state)]."""
    snapshots, pending, step, images_seen = [], sorted(snapshot_times), 0, 0
    start = time.perf_counter()
    for G, b in notebook_steps(folder, device, seed=seed, nz=nz):
        step, images_seen = step + 1, images_seen + b
        elapsed = time.perf_counter() - start
        while pending and elapsed >= pending[0]:
            snapshots.append((elapsed, step, copy.deepcopy(G.state_dict())))
            pending.pop(0)
        if elapsed >= seconds:
            snapshots.append((elapsed, step, copy.deepcopy(G.state_dict())))
            return {"steps": step, "images_seen": images_seen, "seconds": elapsed}, snapshots


@torch.no_grad()
def baseline_samples(state, n, device, seed=0, nz=NZ):
    """n uint8 images from a baseline G state, sampled as the example does (train-mode BatchNorm, batches of 64)."""
    G, _ = baseline_models(nz)
    G.load_state_dict(state)
    G.to(device).train()
    g = torch.Generator().manual_seed(seed)
    out = [G(torch.randn(64, nz, 1, 1, generator=g).to(device)).cpu() for _ in range((n + 63) // 64)]
    return ((torch.cat(out)[:n] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
