"""How many of the ten MNIST digits a generator draws: the demo's quality measure (not a test).

    python bench/digit_diversity.py runs/00000-mnist-cpu-demo/snapshot-000120000.safetensors [more ...]

For each network: 500 G_ema samples (z ~ N(0, I) from seed 123, constant noise), each labelled with
the class of its nearest real digit in pixel space (the 5,000 built-in MNIST digits, L2 on [-1, 1]
pixels); `stylegan.metrics.digits` defines the measure (entropy of the label histogram, ln 10 =
2.30 when all ten digits are equally frequent; digits with >= 3% of the samples; mean pairwise
distance of the samples relative to that of the real digits; for a conditional network the
samples' classes cycle through 0-9 and `agreement` is the share drawn as the class asked for).
A run directory stands for its newest snapshot. One JSON line per network.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import stylegan
from stylegan.data import open_dataset
from stylegan.metrics.digits import RealDigits, digit_diversity
from stylegan.training.snapshot import latest_snapshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("networks", nargs="+", help="snapshots or run directories")
    args = ap.parse_args()
    reals = RealDigits.from_dataset(open_dataset("builtin:mnist", use_labels=True))
    for net in args.networks:
        path = Path(net)
        if path.is_dir():
            path = latest_snapshot(path)
        result = digit_diversity(stylegan.load(path).eval(), reals)
        print(json.dumps({"network": str(path), **result.to_dict()}))


if __name__ == "__main__":
    main()
