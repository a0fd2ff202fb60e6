"""What `mosaic.mask_buffer_m` costs in clear observations, on fabricated cloud fields.

Not a speed benchmark: it counts, for each buffer, the clear 20 m observations left of a season of
fabricated scenes (`landcover.synth.l2a.fabricate`: a cloud core in a medium-probability rim, its
shadow, a cirrus veil, every kept SCL class) and the pixels left with no clear day at all, through
the mask code the mosaic runs (`landcover.mosaic.resample.clear_20m`). Run:
`python benchmarks/measure_mask_buffer.py [--scenes 20] [--size 512] [--cloud-share 0.3] [--clouds 1]`.
"""

from __future__ import annotations

import argparse

import numpy as np

from landcover.bands import BANDS
from landcover.config import MosaicParams
from landcover.mosaic.resample import buffer_pixels, clear_20m
from landcover.synth.l2a import BANDS_10M, fabricate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cloud-share", type=float, default=0.3)
    parser.add_argument("--clouds", type=int, default=1, help="clouds per scene sharing the cloud share")
    parser.add_argument("--buffers", default="0,20,40,60,100,200")
    args = parser.parse_args()
    scenes = fabricate(args.scenes, args.size, seed=1, cloud_share=args.cloud_share, clouds=args.clouds)
    bands = np.stack([np.stack([s.dn(b) for b in BANDS if b not in BANDS_10M]) for s in scenes])
    scl = np.stack([s.scl for s in scenes])
    masked = MosaicParams().masked_classes()
    base = None
    print(f"{args.scenes} scenes of {args.size} px, {args.clouds} cloud(s) sharing {args.cloud_share:.0%} of each; "
          f"masked SCL {list(masked)}")
    print("| mask_buffer_m | clear observations | of buffer 0 | mean clear days | pixels never clear |")
    print("|---:|---:|---:|---:|---:|")
    for buffer_m in (float(b) for b in args.buffers.split(",")):
        clear = clear_20m(bands, scl, masked, buffer_pixels(buffer_m))
        total = int(clear.sum())
        base = base or total
        days = clear.sum(axis=0)
        print(f"| {buffer_m:g} | {total / clear.size:.1%} | {total / base:.1%} | {days.mean():.2f} | "
              f"{(days == 0).mean():.2%} |")


if __name__ == "__main__":
    main()
