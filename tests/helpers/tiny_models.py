"""Tiny Hugging Face models built locally from a config and saved like hub models (no network): the
``hf:`` encoders' tests run on these (test_encoders.py, test_clip_towers.py, test_onnx_backend.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable


def _vocab(folder: Path, words: Iterable[str]) -> list[str]:
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(folder / "vocab.txt")).save_pretrained(str(folder))
    return vocab


def bert(folder: Path, words: Iterable[str]) -> Path:
    """A 2-layer, 32-wide BERT with a hand-written vocabulary."""
    import torch
    from transformers import BertConfig, BertModel

    vocab = _vocab(folder, words)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(str(folder))
    return folder


def vit(folder: Path) -> Path:
    """A 2-layer, 32-wide ViT on 32 px images (4×4 patches of 8 px)."""
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64)
    ViTModel(config, add_pooling_layer=False).eval().save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }))
    return folder


def clip(folder: Path, words: Iterable[str]) -> Path:
    """A two-tower CLIP: a 2-layer text tower, a 2-layer ViT on 32 px images, both projected to 16-d."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    vocab = _vocab(folder, words)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": 0,
                     "bos_token_id": 2, "eos_token_id": 3},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 24, "intermediate_size": 48,
                       "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=16)
    CLIPModel(config).eval().save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"shortest_edge": 32}, "do_center_crop": True,
        "crop_size": {"height": 32, "width": 32}, "resample": 3, "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    return folder
