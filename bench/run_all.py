"""`make bench`: every benchmark, one after the other. Each prints ratios measured side by side."""
from __future__ import annotations

from . import (distill, dynmm, dynmm_defaults, encoders, flickr8k, index_scale, lightcrl, lightcrl_defaults,
               lightcrl_paper, mixup_pairs, mmfuser_kv, qbnorm_bank, quality, robustness, scale, scale_curves, serve_load, store_keys, threads, tokens)


def main() -> None:
    for bench in (encoders, threads, flickr8k, quality, qbnorm_bank, mixup_pairs, lightcrl, lightcrl_defaults, lightcrl_paper, tokens,
                  mmfuser_kv, distill, dynmm, dynmm_defaults, robustness, scale, scale_curves, store_keys, index_scale,
                  serve_load):
        print(f"\n=== {bench.__name__}", flush=True)
        bench.main()


if __name__ == "__main__":
    main()
