"""`make bench`: every benchmark, one after the other. Each prints ratios measured side by side."""
from __future__ import annotations

from . import (distill, dynmm, encoders, flickr8k, index, lightcrl, mixup_pairs, qbnorm_bank, quality, robustness,
               scale, serve_load, threads, tokens)


def main() -> None:
    for bench in (encoders, threads, flickr8k, quality, qbnorm_bank, mixup_pairs, lightcrl, tokens, distill, dynmm,
                  robustness, scale, index, serve_load):
        print(f"\n=== {bench.__name__}", flush=True)
        bench.main()


if __name__ == "__main__":
    main()
