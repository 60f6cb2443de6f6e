"""FP32 vs INT8 in ONNX Runtime, with eager torch FP32 as the peer, on this machine.

Models: the demo's digits CNN (accuracy on the digits holdout) and a ResNet-18-sized classifier
written here without torchvision (11.2 M parameters with a 10-class head; trained briefly on
upscaled digits, then top-1 accuracy and INT8-vs-FP32 agreement on held-out upscaled digits).
For each: throughput at batch 1 and 32 (from the median time), latency p50/p99, file size.

Run: ``.venv/bin/python bench/quantize.py [--size 64] [--epochs 2] [--threads 1] [--repeats 20]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from retrain.digits import train_holdout
from retrain.export import export_onnx, run, session
from retrain.quantize import quantize_int8
from retrain.recipes import digits_input, train_baseline


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al., 2016): [2, 2, 2, 2] basic blocks, 64-512 channels, with ``embed``."""

    def __init__(self, n_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(512, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # type: ignore[no-any-return]


def upscaled_digits(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, 16, 16) digits -> float32 (N, 3, size, size) in [0, 1]."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.repeat(1, 3, 1, 1).numpy()


def train_briefly(net: ResNet18, x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> None:
    """A short Adam run on upscaled digits, so the network's predictions mean something."""
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(yt), generator=gen).split(32):  # type: ignore[no-untyped-call]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    net.eval()


def timed(
    fns: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, repeats: int
) -> dict[str, dict[str, float]]:
    """p50/p99 ms and images/s (from the median) of each runtime on ``x``.

    The runtimes take turns within every repeat, so background load hits them alike.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn(x)  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ms = np.array(ts) * 1000
        out[name] = {
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
            "ips": len(x) / statistics.median(ts),
        }
    return out


def bench_model(
    name: str,
    net: nn.Module,
    calib: np.ndarray,
    evalx: np.ndarray,
    evaly: np.ndarray | None,
    repeats: int,
    threads: int,
) -> None:
    net.eval()
    fp32 = export_onnx(net, calib[:2])
    int8 = quantize_int8(fp32, calib)
    s32, s8 = session(fp32, threads), session(int8, threads)

    @torch.no_grad()
    def eager(x: np.ndarray) -> Any:
        return net(torch.from_numpy(x))

    runners = {
        "torch eager FP32": eager,
        "ORT FP32": lambda x: run(s32, x, 64),
        "ORT INT8": lambda x: run(s8, x, 64),
    }
    by_batch = {
        b: timed(runners, np.ascontiguousarray(evalx[:b]), repeats * (1 if b == 32 else 3))
        for b in (1, 32)
    }
    rows = {label: {b: by_batch[b][label] for b in (1, 32)} for label in runners}
    top32, top8 = run(s32, evalx)[0].argmax(1), run(s8, evalx)[0].argmax(1)
    print(
        f"\n## {name}  (threads={threads}, FP32 {len(fp32) / 1e6:.2f} MB, "
        f"INT8 {len(int8) / 1e6:.2f} MB, {len(fp32) / len(int8):.2f}x smaller)"
    )
    print(
        f"{'runtime':<18}{'b1 img/s':>10}{'b1 p50 ms':>11}{'b1 p99 ms':>11}"
        f"{'b32 img/s':>11}{'b32 p50 ms':>12}{'b32 p99 ms':>12}"
    )
    for label, r in rows.items():
        print(
            f"{label:<18}{r[1]['ips']:>10.0f}{r[1]['p50']:>11.3f}{r[1]['p99']:>11.3f}"
            f"{r[32]['ips']:>11.0f}{r[32]['p50']:>12.2f}{r[32]['p99']:>12.2f}"
        )
    r8, r32, eg = rows["ORT INT8"], rows["ORT FP32"], rows["torch eager FP32"]
    print(
        f"INT8/FP32 throughput: batch 1 {r8[1]['ips'] / r32[1]['ips']:.2f}x, "
        f"batch 32 {r8[32]['ips'] / r32[32]['ips']:.2f}x; ORT FP32 / eager torch: batch 1 "
        f"{r32[1]['ips'] / eg[1]['ips']:.2f}x, batch 32 {r32[32]['ips'] / eg[32]['ips']:.2f}x"
    )
    if evaly is not None:
        a32, a8 = float((top32 == evaly).mean()), float((top8 == evaly).mean())
        print(
            f"accuracy on {len(evaly)} held-out digits: FP32 {a32:.2%}, INT8 {a8:.2%} "
            f"(delta {(a8 - a32) * 100:+.2f} points)"
        )
    print(f"top-1 agreement INT8 vs FP32 on {len(evalx)} inputs: {(top32 == top8).mean():.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="ResNet input side")
    parser.add_argument("--train-images", type=int, default=640)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    _, hold = train_holdout(seed=0)
    x = digits_input(hold.images)
    bench_model(
        "digits CNN (demo model)",
        train_baseline(),
        x[:256],
        x,
        hold.labels,
        args.repeats * 5,
        args.threads,
    )
    train, _ = train_holdout(seed=0)
    resnet = ResNet18(n_classes=10)
    xr_train = upscaled_digits(train.images[: args.train_images], args.size)
    xr = upscaled_digits(hold.images, args.size)
    t0 = time.perf_counter()
    train_briefly(resnet, xr_train, train.labels[: args.train_images], args.epochs)
    print(
        f"\nResNet-18: {sum(p.numel() for p in resnet.parameters()) / 1e6:.1f} M parameters, "
        f"input 3x{args.size}x{args.size}, trained {args.epochs} epochs on "
        f"{args.train_images} upscaled digits in {time.perf_counter() - t0:.0f} s"
    )
    bench_model("ResNet-18", resnet, xr_train[:64], xr, hold.labels, args.repeats, args.threads)


if __name__ == "__main__":
    main()
