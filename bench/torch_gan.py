#!/usr/bin/env python3
"""PyTorch reference for qgate's GAN training step, for `npm run bench` (issue 5).

The same generator and discriminator as src/train/gan.ts (mlp and dcgan; ARCHITECTURE_TEXT there
is the description to compare with), the same losses (sigmoid cross-entropy for D, non-saturating
-log D(G(z)) for G), Adam(beta1=0.5), one D step then one G step per training step, on random
stand-in data of MNIST's shape (the step time does not depend on the pixel values).

    python3 bench/torch_gan.py --arch mlp --batch 64 --steps 50 [--threads 1]
        prints one JSON line: the median milliseconds per step.
    python3 bench/torch_gan.py --serve [--threads 1]
        reads one JSON request a line from stdin, {"arch", "steps", "warmup", "batch", "lr_g", "lr_d"},
        and answers each with one JSON line holding every step's milliseconds. Models and optimizers
        are built once per (arch, batch, lr) and kept, so `npm run bench` can alternate short rounds
        of qgate and PyTorch steps without paying Python's and torch's start-up each round.

Quality regularization (lambda * Q) is not ported: this is the lambda = 0 step, without the
forward pass of Q that qgate's trainer makes at lambda = 0 to log Q.
"""
import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn


def build(arch: str, latent: int):
    if arch == 'mlp':
        g = nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
        d = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
        return g, d
    # TF.js 'same' padding for 4x4 stride-2 transposed convs: pad 1 each side gives 7 -> 14 -> 28.
    # Batch norm as in gan.ts: TF.js momentum 0.9 (new = 0.9*old + 0.1*batch) is torch's momentum 0.1;
    # epsilon 1e-3 is TF.js's default (torch's is 1e-5). The layers before a batch norm have no bias.
    g = nn.Sequential(
        nn.Linear(latent, 7 * 7 * 64, bias=False), nn.BatchNorm1d(7 * 7 * 64, eps=1e-3, momentum=0.1), nn.ReLU(),
        nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(32, eps=1e-3, momentum=0.1), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 1),
    )
    return g, d


def trainable(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def blas_library() -> str:
    """The BLAS this process loaded, as 'kind: path'. Debian's torch links libblas.so.3, which is
    reference (netlib) BLAS or OpenBLAS depending on the alternatives (or LD_LIBRARY_PATH), and the
    two differ about tenfold on the MLP step, so the reference is only fair with OpenBLAS."""
    try:
        with open('/proc/self/maps') as f:
            paths = sorted({line.split()[-1] for line in f if '/' in line and 'blas' in line.split('/')[-1].lower()})
    except OSError:
        return 'unknown'
    for kind, marker in (('OpenBLAS', 'openblas'), ('MKL', 'mkl'), ('reference BLAS (netlib)', '/blas/libblas')):
        hit = next((p for p in paths if marker in p.lower()), None)
        if hit:
            return f'{kind}: {hit}'
    return ', '.join(paths) or 'none loaded'


class Setup:
    def __init__(self, arch: str, latent: int, batch: int, lr_g: float, lr_d: float):
        torch.manual_seed(1)
        self.g, self.d = build(arch, latent)
        self.g.train()
        self.d.train()
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr_d, betas=(0.5, 0.999))
        self.bce = nn.BCEWithLogitsLoss()
        self.real = torch.rand(batch, 1, 28, 28) * 2 - 1
        self.ones = torch.ones(batch, 1)
        self.zeros = torch.zeros(batch, 1)
        self.batch = batch
        self.latent = latent

    def step(self) -> float:
        t0 = time.perf_counter()
        z = torch.randn(self.batch, self.latent)
        # qgate's D step computes G(z) outside the gradient tape; no_grad is the same here.
        with torch.no_grad():
            fake = self.g(z)
        self.opt_d.zero_grad()
        loss_d = self.bce(self.d(self.real), self.ones) + self.bce(self.d(fake), self.zeros)
        loss_d.backward()
        self.opt_d.step()
        z = torch.randn(self.batch, self.latent)
        self.opt_g.zero_grad()
        loss_g = self.bce(self.d(self.g(z)), self.ones)
        loss_g.backward()
        self.opt_g.step()
        # qgate's step ends by reading its losses; so does this one (it also waits for the work).
        loss_d.item()
        loss_g.item()
        return (time.perf_counter() - t0) * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--arch', choices=['mlp', 'dcgan'], default='mlp')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--steps', type=int, default=50)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--latent', type=int, default=100)
    p.add_argument('--lr-g', type=float, default=1e-3)
    p.add_argument('--lr-d', type=float, default=5e-4)
    p.add_argument('--serve', action='store_true')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    info = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'blas': blas_library(),
            'python': sys.version.split()[0]}
    if not a.serve:
        s = Setup(a.arch, a.latent, a.batch, a.lr_g, a.lr_d)
        times = [s.step() for _ in range(a.warmup + a.steps)][a.warmup:]
        print(json.dumps({'arch': a.arch, 'batch': a.batch, 'steps': a.steps, 'median_ms': statistics.median(times),
                          **info}))
        return
    setups: dict = {}
    print(json.dumps({'ready': True, **info}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        r = json.loads(line)
        key = (r['arch'], r.get('batch', 64), r['lr_g'], r['lr_d'])
        if key not in setups:
            setups[key] = Setup(r['arch'], a.latent, key[1], key[2], key[3])
        s = setups[key]
        for _ in range(r.get('warmup', 0)):
            s.step()
        times = [s.step() for _ in range(r['steps'])]
        print(json.dumps({'arch': r['arch'], 'times_ms': times, 'params_g': trainable(s.g), 'params_d': trainable(s.d),
                          'blas': blas_library()}), flush=True)


if __name__ == '__main__':
    main()
