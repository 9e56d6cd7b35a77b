"""Paired features in memory, learnable by construction, for method and trainer tests."""
from __future__ import annotations

import numpy as np
import torch

from latentfuse.store.paired import PairedFeatures
from latentfuse.store.tokens import TapInputs, in_memory_tokens

SMALL = {"dim": 32, "hidden": 64, "n_blocks": 1, "dropout": 0.1, "input_dropout": 0.0}


def synthetic_pairs(n: int, seed: int, per: int = 2) -> PairedFeatures:
    """A shared 12-d latent seen through two different random non-linear 'encoders' plus noise;
    each 'image' has ``per`` noisy 'captions'."""
    gen = torch.Generator().manual_seed(1234)  # same encoders for every split
    wa, wb = torch.randn(12, 48, generator=gen), torch.randn(12, 32, generator=gen)
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 12, generator=rng)
    xa = torch.tanh(z @ wa) + 0.1 * torch.randn(n, 48, generator=rng)
    zt = z.repeat_interleave(per, 0) + 0.3 * torch.randn(n * per, 12, generator=rng)
    xb = torch.tanh(zt @ wb) + 0.1 * torch.randn(n * per, 32, generator=rng)
    pairs = np.stack([np.repeat(np.arange(n), per), np.arange(n * per)], 1)
    return PairedFeatures(("image", "text"), {"image": xa, "text": xb},
                          {"image": [f"i{i}" for i in range(n)], "text": [f"t{j}" for j in range(n * per)]},
                          pairs)


MMFUSER_SMALL = {"taps": ["shallow", "mid", "deep"], "width": 32, "heads": 4, "dim": 16, "hidden": 32,
         "dropout": 0.0, "input_dropout": 0.0, "mixup_alpha": 0.0}


def shallow_signal_pairs(n: int, seed: int) -> PairedFeatures:
    """The match between an 'image' and its 'text' is carried by the SHALLOW tap only; mid and deep are
    noise. Learning anything requires the fusion block to read the shallow level."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).standard_normal((8, 12))
    z = rng.standard_normal((n, 8))
    shallow = [np.tanh(z[i] @ mix)[None, :].repeat(4, 0) + 0.1 * rng.standard_normal((4, 12)) for i in range(n)]
    taps = {"shallow": in_memory_tokens([s.astype(np.float32) for s in shallow], 12),
            "mid": in_memory_tokens([rng.standard_normal((4, 20)).astype(np.float32) for _ in range(n)], 20),
            "deep": in_memory_tokens([rng.standard_normal((4, 16)).astype(np.float32) for _ in range(n)], 16)}
    text = torch.from_numpy((z @ np.random.default_rng(98).standard_normal((8, 10))).astype(np.float32))
    ids = [str(i) for i in range(n)]
    return PairedFeatures(("image", "text"), {"image": TapInputs(taps), "text": text}, {"image": ids, "text": ids},
                          np.stack([np.arange(n), np.arange(n)], 1))


TOKEN_OPTIONS = {"inputs": "tokens", "width": 32, "dim": 32, "transformer_heads": 4, "dropout": 0.0}


def token_pairs(n: int, seed: int) -> PairedFeatures:
    """Both sides are ragged token sequences whose mean carries a shared latent (through different maps)."""
    rng = np.random.default_rng(seed)
    wa, wb = np.random.default_rng(7).standard_normal((6, 24)), np.random.default_rng(8).standard_normal((6, 16))
    z = rng.standard_normal((n, 6))
    image = [np.tanh(z[i] @ wa) + 0.3 * rng.standard_normal((3 + i % 4, 24)) for i in range(n)]
    text = [np.tanh(z[i] @ wb) + 0.3 * rng.standard_normal((2 + i % 5, 16)) for i in range(n)]
    ids = [str(i) for i in range(n)]
    x = {"image": TapInputs({"head": in_memory_tokens([a.astype(np.float32) for a in image], 24)}),
         "text": TapInputs({"layer6": in_memory_tokens([a.astype(np.float32) for a in text], 16)})}
    return PairedFeatures(("image", "text"), x, {"image": ids, "text": ids}, np.stack([np.arange(n)] * 2, 1))
