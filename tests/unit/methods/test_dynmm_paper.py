"""DynMM's `paper` preset is the official modality-level model, ``ModalityDynMM/multimedia/imdb_dyn.py``
(``DynMMNet`` at its argparse defaults) with MultiBench's ``MLP``, ``MaxOut_MLP``, ``Concat`` + ``Linear`` late
fusion and its ``train()`` (BCE + ``lossw`` · the fusion branch's mean gate weight, ``clip_val`` 8, the best
epoch by macro-F1) — transcribed below and compared on the same weights. The one deliberate difference, the
gate reading the cheap side only (so a text-routed sample never runs the image encoder), is the gate's input;
the transcription feeds our gate the same input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from latentfuse.config import TrainConfig
from latentfuse.methods import build_method, make_config
from latentfuse.train import Trainer

from test_dynmm import LABELS, world  # noqa: F401  (the four-label world with a known answer)

DIMS = {"image": 32, "text": 16}


def paper(**extra):
    return build_method("dynmm", DIMS, {"preset": "paper", "labels": LABELS, "hidden": 24, "gate_hidden": 12,
                                        "encoder_flops": {"text": 1e6, "image": 9e6}, **extra})


# ---------------------------------------------------------------- the official code, transcribed

def multibench_mlp(module, x):
    """MLP.forward (dropout off): fc2(relu(fc(x)))."""
    fc, _, fc2 = module
    return fc2(F.relu(fc(x)))


def maxout(module, x):
    """Maxout.forward: lin(x).view(*shape[:-1], d_out, pool_size).max(-1)."""
    shape = list(x.size())
    shape[-1] = module.dim_out
    shape.append(module.pool)
    return module.lin(x).view(*shape).max(dim=len(shape) - 1)[0]


def maxout_mlp(module, x):
    """MaxOut_MLP.forward with linear_layer=False: op0 … op4."""
    op0, op1, bn2, drop2, op3, bn4, drop4 = module
    return drop4(bn4(maxout(op3, drop2(bn2(maxout(op1, op0(x)))))))


def official_loss(method, batch, reg=0.1):
    """DynMMNet.forward + train(): DiffSoftmax(gate, τ=1, soft); output = w0·text branch + w1·branch3;
    loss = BCEWithLogits(output, labels) + lossw · w[:, 1].mean()."""
    text_expert, fusion_expert = method.experts
    weight = torch.softmax(method.gate(batch["text"]) / 1.0, dim=-1)
    text_pred = multibench_mlp(text_expert.head, multibench_mlp(text_expert.branches["text"], batch["text"]))
    encoded = [maxout_mlp(fusion_expert.branches["text"], batch["text"]),
               maxout_mlp(fusion_expert.branches["image"], batch["image"])]
    branch3 = fusion_expert.head(torch.cat(encoded, dim=1))  # MMDL(encoders, Concat(), Linear(2·512, 23))
    output = weight[:, 0:1] * text_pred + weight[:, 1:2] * branch3
    return F.binary_cross_entropy_with_logits(output, batch["labels"]) + reg * weight[:, 1].mean()


# ---------------------------------------------------------------- the checks

def test_the_paper_preset_is_the_official_model_on_the_same_weights():
    method = paper()
    text_expert, fusion_expert = method.experts
    assert [type(m).__name__ for m in fusion_expert.branches["image"]] == [
        "BatchNorm1d", "Maxout", "BatchNorm1d", "Dropout", "Maxout", "BatchNorm1d", "Dropout"]
    assert fusion_expert.branches["image"][1].dim_out == 48 and fusion_expert.branches["text"][1].dim_out == 24
    assert fusion_expert.head.in_features == 48  # Linear(1024, 23) at hidden 512
    data = world(64, 3)
    batch = {"image": data.x["image"][:40], "text": data.x["text"][:40], "labels": data.labels[:40]}
    method.train()
    method.loss(batch)  # one training forward moves the batch norms' running statistics off their init
    method.eval()
    with torch.no_grad():
        for parameter in method.gate.parameters():  # a gate that routes both ways
            parameter.mul_(4.0)
        ours, extras = method.loss(batch)
        theirs = official_loss(method, batch)
    assert 0.05 < extras["share_fusion"] < 0.95
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


def test_the_resource_term_is_the_official_one_and_full_model_units_scale_it():
    """With two experts, above-cheapest units make λ·E[cost] the official λ · mean(w_fusion); full-model units
    multiply its gradient by 1 − min/max (what made the paper's λ values not transfer)."""
    gate = torch.tensor([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5]])
    official = paper()
    assert torch.allclose(official.relative_costs(gate), torch.tensor([0.0, 1.0]))
    ours = paper(resource_units="full-model")
    low, high = ours.flops
    assert torch.allclose(ours.relative_costs(gate), torch.tensor([low / high, 1.0]))


def test_paper_training_clips_at_8_and_picks_the_best_epoch_by_macro_f1(tmp_path, monkeypatch):
    clipped = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, norm, *a, **k: clipped.append(norm) or
                        real(params, norm, *a, **k))
    method = paper(expert_epochs=1)
    trainer = Trainer(method, TrainConfig(epochs=3, batch_size=64, threads=1), tmp_path, type(method).validate)
    assert trainer.select == "f1/macro" and method.max_grad_norm == 8.0
    trainer.fit(world(256, 0), world(128, 1), progress=False)
    assert clipped and set(clipped) == {8.0}
    assert paper(grad_clip=0.0).max_grad_norm == 0.0 and make_config("dynmm", {}).select == "f1/micro"


def test_hard_from_is_fusion_dynmms_epoch_hard_with_exp_decay_temp_over_it():
    """train.py: hard_gate = epoch >= epoch_hard; temp = ExpDecayTemp(start, end, time_len=epoch_hard).get_t(epoch)."""
    method = paper(anneal="exp", tau_start=1.0, tau_end=0.01, hard_from=4, expert_epochs=2)
    b = math.exp(1 / 4 * math.log(0.01 / 1.0))
    for epoch in range(6):  # FusionDynMM's 0-based epochs of the gate phase
        method.begin_epoch(2 + 1 + epoch, 20)
        assert method.tau == pytest.approx(1.0 * b ** epoch) and method.hard_now == (epoch >= 4)
