#!/usr/bin/env python3
"""PyTorch reference for qgate's GAN training step, for `npm run bench` (issue 5).

The same generator and discriminator as src/train/gan.ts (mlp and dcgan), the same losses
(sigmoid cross-entropy for D, non-saturating -log D(G(z)) for G), Adam(beta1=0.5), one D step
then one G step per training step, on random stand-in data of MNIST's shape (the step time does
not depend on the pixel values). Prints one JSON line: the median milliseconds per step.

    python3 bench/torch_gan.py --arch mlp --batch 64 --steps 50 [--threads 1]

Quality regularization (lambda * Q) is not ported: this is the lambda = 0 step.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


def build(arch: str, latent: int):
    if arch == 'mlp':
        g = nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
        d = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
        return g, d
    # TF.js 'same' padding for 4x4 stride-2 transposed convs: pad 1 each side gives 7 -> 14 -> 28.
    g = nn.Sequential(
        nn.Linear(latent, 7 * 7 * 64), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 1),
    )
    return g, d


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--arch', choices=['mlp', 'dcgan'], default='mlp')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--steps', type=int, default=50)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--latent', type=int, default=100)
    a = p.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    g, d = build(a.arch, a.latent)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=5e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(a.batch, 1, 28, 28) * 2 - 1
    ones = torch.ones(a.batch, 1)
    zeros = torch.zeros(a.batch, 1)
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        z = torch.randn(a.batch, a.latent)
        opt_d.zero_grad()
        loss_d = bce(d(real), ones) + bce(d(g(z).detach()), zeros)
        loss_d.backward()
        opt_d.step()
        z = torch.randn(a.batch, a.latent)
        opt_g.zero_grad()
        loss_g = bce(d(g(z)), ones)
        loss_g.backward()
        opt_g.step()
        if step >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({
        'arch': a.arch, 'batch': a.batch, 'steps': a.steps, 'threads': a.threads,
        'median_ms': statistics.median(times), 'torch': torch.__version__,
    }))


if __name__ == '__main__':
    main()
