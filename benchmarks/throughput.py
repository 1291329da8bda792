"""Throughput of noise fitting and transform against the bare encoder, side by side.

Measures, in one run and on the same encoder and batches:

* the noise-fitting step of ``DebiasedNoiseTransformer`` (per image: forward through the
  edit and the encoder, the adversarial loss, backward to the noise, Adam step and
  projection, host-to-device copies included) against a bare forward + backward of the
  encoder to its input on a batch already on the device;
* ``transform`` (edit + forward, from a NumPy array) against a bare no-grad forward of
  the same NumPy batches.

The fit cost per image is isolated from the one-off set-up (probe, clean embeddings) by
fitting for two different numbers of epochs and dividing the time difference.

Usage::

    python benchmarks/throughput.py                 # CPU: small CNN; GPU: ViT-B/16 too
    python benchmarks/throughput.py --quick         # a smoke run

Writes ``benchmarks/results/throughput.md``. Targets (issue 7): fit step >= 0.95x and
transform >= 0.97x the bare encoder's images/s.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from fairnoise import DebiasedNoiseTransformer
from fairnoise.encoders import TorchEncoder


def small_cnn(channels: int = 3) -> torch.nn.Module:
    """A small frozen CNN (random weights) standing in for an encoder on CPU."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ).eval()


class ViTB16(torch.nn.Module):
    """A ViT/16 encoder, random weights: ViT-B/16-sized by default (width 768, depth 12,
    12 heads); ``width=192, heads=3`` gives a ViT-Ti/16-sized one."""

    def __init__(self, image_size: int = 224, width: int = 768, depth: int = 12,
                 heads: int = 12) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = torch.nn.Conv2d(3, width, 16, stride=16)
        n = (image_size // 16) ** 2 + 1
        self.cls = torch.nn.Parameter(torch.zeros(1, 1, width))
        self.pos = torch.nn.Parameter(torch.randn(1, n, width) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                                 activation="gelu", batch_first=True,
                                                 norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos
        return self.norm(self.blocks(t))[:, 0]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_forward_backward(module, X, batch, device, autocast) -> float:
    """Images/s of forward + backward to the input, batches already on the device."""
    xs = [torch.as_tensor(X[i : i + batch]).to(device) for i in range(0, len(X), batch)]
    module = module.to(device).requires_grad_(False)
    for x in xs[:2]:  # warm-up
        with autocast():
            module(x.requires_grad_(True)).float().sum().backward()
    sync(device)
    start = time.perf_counter()
    for x in xs:
        x = x.detach().requires_grad_(True)
        with autocast():
            z = module(x).float()
        z.sum().backward()
    sync(device)
    return len(X) / (time.perf_counter() - start)


def bare_forward(module, X, batch, device, autocast) -> float:
    """Images/s of a no-grad forward of NumPy batches (host-to-device copy included)."""
    module = module.to(device)
    with torch.no_grad():
        for i in range(0, 2 * batch, batch):
            with autocast():
                module(torch.as_tensor(X[i : i + batch]).to(device))
        sync(device)
        start = time.perf_counter()
        for i in range(0, len(X), batch):
            with autocast():
                module(torch.as_tensor(X[i : i + batch]).to(device)).float().cpu()
        sync(device)
    return len(X) / (time.perf_counter() - start)


def fairnoise_fit(encoder, X, a, batch, epochs) -> float:
    """Seconds of a fit with ``epochs`` epochs (no early stopping)."""
    t = DebiasedNoiseTransformer(encoder=encoder, batch_size=batch, max_epochs=epochs,
                                 n_iter_no_change=epochs, tol=0.0, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(X, sensitive_features=a)
    sync(encoder.torch_device)
    return time.perf_counter() - start, t


def measure(name, module, image_size, n, batch, device, precision, repeats) -> dict:
    rng = np.random.default_rng(0)
    X = rng.random((n, 3, image_size, image_size), dtype=np.float32)
    a = np.arange(n) % 2
    encoder = TorchEncoder(module, device=device, precision=precision, batch_size=batch)
    def autocast():  # the precision the encoder runs at (bf16 autocast on CUDA by default)
        mode = precision if precision != "auto" else (
            "bf16" if encoder.torch_device.type == "cuda" else "fp32")
        if mode == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if mode == "bf16" else torch.float16
        return torch.autocast(device_type=encoder.torch_device.type, dtype=dtype)

    rows = []
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both sides
        fb = bare_forward_backward(module, X, batch, encoder.torch_device, autocast)
        t1, _ = fairnoise_fit(encoder, X, a, batch, 1)
        t3, fitted = fairnoise_fit(encoder, X, a, batch, 3)
        fit_ips = 2 * n / (t3 - t1)
        fwd = bare_forward(module, X, batch, encoder.torch_device, autocast)
        start = time.perf_counter()
        fitted.transform(X)
        sync(encoder.torch_device)
        tr_ips = n / (time.perf_counter() - start)
        rows.append((fb, fit_ips, fwd, tr_ips))
    fb, fit_ips, fwd, tr_ips = np.median(np.asarray(rows), axis=0)
    return dict(name=name, device=str(encoder.torch_device), precision=precision,
                image_size=image_size, batch=batch, n=n, bare_fb=fb, fit=fit_ips,
                bare_fwd=fwd, transform=tr_ips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "throughput.md"))
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    results = [measure("small CNN, 3x64x64", small_cnn(), 64, 256 if args.quick else 2048,
                       128, "cpu", "fp32", repeats)]
    if not args.quick:
        # an encoder whose own cost dominates, as a foundation model's does
        results.append(measure("ViT-Ti/16-sized, 3x224x224", ViTB16(width=192, heads=3).eval(),
                               224, 128, 32, "cpu", "fp32", repeats))
    if torch.cuda.is_available():
        results.append(measure("ViT-B/16, 3x224x224", ViTB16(), 224,
                               512 if args.quick else 4096, 128, "cuda", "bf16", repeats))
    lines = [
        "# Throughput: fairnoise against the bare encoder",
        "",
        f"Command: `python benchmarks/throughput.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else
           ", no GPU (the ViT-B/16 row needs CUDA)"),
        "",
        "| encoder | device | precision | batch | bare fwd+bwd (img/s) | fit step (img/s) "
        "| fit / bare | bare fwd (img/s) | transform (img/s) | transform / bare |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['device']} | {r['precision']} | {r['batch']} | "
            f"{r['bare_fb']:.0f} | {r['fit']:.0f} | {r['fit'] / r['bare_fb']:.3f} | "
            f"{r['bare_fwd']:.0f} | {r['transform']:.0f} | "
            f"{r['transform'] / r['bare_fwd']:.3f} |")
    lines += ["", "Targets: fit / bare >= 0.95, transform / bare >= 0.97. Medians of "
              f"{repeats} interleaved repetitions."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
