"""DIME-FM: each loss term against a hand computation, the KL's direction and temperature, unpaired batches, the
trainer's targets seam, learning from unpaired synthetic data, and the `distill` CLI end to end on the
coloured shapes (a real teacher), where the student's image side runs only a truncated backbone."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from latentfuse.cli import app
from latentfuse.config import StudentMethod, TrainConfig
from latentfuse.distill import unpaired
from latentfuse.eval.retrieval import retrieval_metrics
from latentfuse.losses import distill_kl
from latentfuse.methods import build_method, make_config
from latentfuse.methods.dime import cross_term, tower_terms
from latentfuse.store.paired import PairedFeatures
from latentfuse.store.tokens import TapInputs, in_memory_tokens
from latentfuse.train import Trainer


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def kl_by_hand(teacher: np.ndarray, student: np.ndarray, t: float) -> float:
    p, q = softmax(teacher / t), softmax(student / t)
    return float((p * np.log(p / q)).sum(axis=1).mean())


def test_kl_is_teacher_to_student_at_the_temperature():
    teacher = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    student = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 3.0]])
    for t in (1.0, 3.0, 7.0):
        got = float(distill_kl(torch.tensor(teacher), torch.tensor(student), t))
        assert got == pytest.approx(kl_by_hand(teacher, student, t), rel=1e-6)
    forward = float(distill_kl(torch.tensor(teacher), torch.tensor(student), 1.0))
    backward = float(distill_kl(torch.tensor(student), torch.tensor(teacher), 1.0))
    assert forward != pytest.approx(backward, rel=1e-3)  # KL is not symmetric: the direction is tested above
    assert float(distill_kl(torch.tensor(teacher), torch.tensor(teacher), 2.0)) == pytest.approx(0.0, abs=1e-7)


def unit(rows: list[list[float]]) -> np.ndarray:
    x = np.array(rows, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_each_term_matches_a_hand_computation():
    cfg = make_config("dime", {"w_udist": 1.0})
    student = unit([[1, 0.2], [0.1, 1], [1, 1]])
    own = unit([[1, 0], [0, 1], [1, 0.8]])
    other = unit([[0.9, 0.1], [0.2, 1], [-1, 0.3]])
    s = lambda a, b: 100.0 * a @ b.T  # noqa: E731 - the paper's s(a, b) = 100·cos
    vl = kl_by_hand(s(own, other), s(student, other), 1.0) + kl_by_hand(s(other, own), s(other, student), 1.0)
    pvl = 2 * kl_by_hand(s(own, own), s(student, own), 3.0)
    udist = 2 * kl_by_hand(s(own, own), s(student, student), 7.0)
    terms = tower_terms(*(torch.tensor(x) for x in (student, own, other)), cfg)
    assert float(terms["vl"]) == pytest.approx(vl, rel=1e-6)
    assert float(terms["pvl"]) == pytest.approx(pvl, rel=1e-6)
    assert float(terms["udist"]) == pytest.approx(udist, rel=1e-6)
    image, text = unit([[1, 0.1], [0.3, 1], [1, -1]]), unit([[0.5, 1], [1, 0], [-0.2, 1]])
    cross = kl_by_hand(s(own, other), s(image, text), 1.0) + kl_by_hand(s(other, own), s(text, image), 1.0)
    got = cross_term(*(torch.tensor(x) for x in (image, text, own, other)), cfg)
    assert float(got) == pytest.approx(cross, rel=1e-6)
    same = tower_terms(*(torch.tensor(x) for x in (own, own, other)), cfg)  # a perfect student: nothing to learn
    assert all(float(v) == pytest.approx(0.0, abs=1e-6) for v in same.values())


DIMS = {"image": 12, "text": {"words": 6}}


def batch(n: int = 8, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, 5, dtype=torch.bool)
    mask[:, 3:] = torch.rand(n, 2, generator=g) > 0.5
    return {"image": torch.randn(n, 12, generator=g), "text": {"words": (torch.randn(n, 5, 6, generator=g), mask)},
            "targets": {"image": torch.randn(n, 16, generator=g), "text": torch.randn(n, 16, generator=g)}}


def dime(**options):
    return build_method("dime", DIMS, {"image_student": "mlp", "dim": 16, "width": 32, "dropout": 0.0, **options})


def test_the_total_is_the_weighted_sum_and_terms_switch_off():
    b = batch()
    method = dime(w_udist=0.5).eval()
    total, parts = method.loss(b)
    expected = sum(w * parts[f"{side}_{term}"] for side in ("image", "text")
                   for term, w in (("vl", 0.7), ("pvl", 0.3), ("udist", 0.5))) + 0.7 * parts["cross"]
    assert float(total) == pytest.approx(expected, rel=1e-5)
    _, without = dime(w_pvl=0.0, w_cross=0.0).eval().loss(b)
    assert without["image_pvl"] == 0.0 and without["text_pvl"] == 0.0 and without["image_vl"] > 0
    assert "cross" not in without


def released_get_loss(student_img_feat, teacher_img_feat, teacher_text_feat, t_vl=1.0, t_pvl=3.0, w_vl=0.7,
                      w_pvl=0.3):
    """Training/utils/utils.py ``get_loss`` with --use_pvl_loss (udist off) and split_network's ``create_logits``
    (scale 100, L2-normalised), KLDivLoss(reduction="batchmean") of ``compute_kl_loss``; the student's text
    features are the teacher's."""
    import torch.nn.functional as F

    kl_loss = torch.nn.KLDivLoss(reduction="batchmean")

    def create_logits(x1, x2, logit_scale=100):
        x1, x2 = x1 / x1.norm(dim=-1, keepdim=True), x2 / x2.norm(dim=-1, keepdim=True)
        return logit_scale * x1 @ x2.t(), logit_scale * x2 @ x1.t()

    def compute_kl_loss(teacher_logits, student_logits, temp):
        return kl_loss(F.log_softmax(student_logits / temp, dim=1), F.softmax(teacher_logits / temp, dim=1))

    student_text_feat = teacher_text_feat
    teacher_img_logits, _ = create_logits(teacher_img_feat, teacher_img_feat)
    student_img_logits, _ = create_logits(student_img_feat, teacher_img_feat)
    pvl_loss = 2 * compute_kl_loss(teacher_img_logits, student_img_logits, t_pvl)
    teacher_img_text_logits, teacher_text_img_logits = create_logits(teacher_img_feat, teacher_text_feat)
    student_img_text_logits, student_text_img_logits = create_logits(student_img_feat, student_text_feat)
    vl_loss = compute_kl_loss(teacher_img_text_logits, student_img_text_logits, t_vl) + compute_kl_loss(
        teacher_text_img_logits, student_text_img_logits, t_vl)
    return w_vl * vl_loss + w_pvl * pvl_loss


def test_the_paper_preset_is_the_released_loss():
    paper = make_config("dime", {"preset": "paper"})
    assert (paper.logit_scale, paper.w_cross, paper.w_vl, paper.w_pvl, paper.w_udist) == (100.0, 0.0, 0.7, 0.3, 0.0)
    assert (paper.t_vl, paper.t_pvl, paper.text_student) == (1.0, 3.0, "teacher")
    assert make_config("dime", {}).logit_scale == 0.0  # resolved to the teacher's own scale by `distill`
    teacher = build_method("fusemix", {"image": 12, "text": 9}, {"dim": 16, "hidden": 32})
    spec = {"method": "fusemix", "method_config": teacher.config_dict(), "dims": teacher.dims}
    method = build_method("dime", {"image": 20, "text": 9}, {"preset": "paper", "image_student": "mlp", "dim": 16,
                                                            "width": 32, "teacher": spec}).eval()
    gen = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(8, 20, generator=gen), "text": torch.randn(8, 9, generator=gen),
             "targets": {"image": torch.randn(8, 16, generator=gen), "text": torch.randn(8, 16, generator=gen)}}
    with torch.no_grad():
        ours, parts = method.loss(batch)
        theirs = released_get_loss(method.project("image", batch["image"]), batch["targets"]["image"],
                                   batch["targets"]["text"])
    assert set(parts) == {"image_vl", "image_pvl", "image_udist"} and float(ours) > 0.1
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_a_teacher_tower_is_frozen_and_adds_no_terms():
    teacher = build_method("fusemix", {"image": 12, "text": 9}, {"dim": 16, "hidden": 32})
    spec = {"method": "fusemix", "method_config": teacher.config_dict(), "dims": teacher.dims}
    method = build_method("dime", {"image": 12, "text": 9}, {"image_student": "mlp", "text_student": "teacher",
                                                           "dim": 16, "teacher": spec})
    method.towers["text"].teacher.load_state_dict(teacher.state_dict())
    _, parts = method.train().loss({"image": torch.randn(4, 12), "text": torch.randn(4, 9),
                                    "targets": {"image": torch.randn(4, 16), "text": torch.randn(4, 16)}})
    assert set(parts) == {"image_vl", "image_pvl", "image_udist"}
    assert not method.towers["text"].teacher.training  # its dropout never runs, even in train mode
    x = torch.randn(3, 9)
    assert torch.allclose(method.encode("text", x), teacher.eval().encode("text", x))
    trainable = [name for name, p in method.named_parameters() if p.requires_grad]
    assert trainable and not any(name.startswith("towers.text") for name in trainable)


def test_distill_objective_without_targets_says_what_to_do():
    b = batch()
    del b["targets"]
    with pytest.raises(Exception, match="latentfuse distill"):
        dime().loss(b)


def test_unpaired_partners_walk_the_larger_pool_once_and_cycle_the_smaller():
    pairs = unpaired(7, 20, seed=3)
    assert pairs.shape == (20, 2)
    assert sorted(pairs[:, 1]) == list(range(20))
    counts = np.bincount(pairs[:, 0], minlength=7)
    assert counts.max() - counts.min() <= 1 and counts.min() >= 2
    assert np.array_equal(pairs, unpaired(7, 20, seed=3)) and not np.array_equal(pairs, unpaired(7, 20, seed=4))


def test_trainer_hands_the_batch_rows_of_the_targets_to_the_method():
    x = {"a": torch.arange(5.0)[:, None], "b": torch.arange(3.0)[:, None] + 10}
    targets = {"a": torch.arange(5.0)[:, None] * 100, "b": torch.arange(3.0)[:, None] * 1000}
    data = PairedFeatures(("a", "b"), x, {"a": list("vwxyz"), "b": list("pqr")}, np.array([[4, 0], [1, 2]]), targets)
    got = data.batch(torch.tensor([1, 0]))  # positions in pairs: (1, 2) then (4, 0)
    assert got["a"].flatten().tolist() == [1.0, 4.0] and got["b"].flatten().tolist() == [12.0, 10.0]
    assert got["targets"]["a"].flatten().tolist() == [100.0, 400.0]
    assert got["targets"]["b"].flatten().tolist() == [2000.0, 0.0]
    with pytest.raises(Exception, match="one row per input row"):
        PairedFeatures(("a", "b"), x, {"a": [], "b": []}, np.zeros((0, 2), int), {"a": torch.zeros(2, 1)})


def synthetic_world(n: int, seed: int, concepts: torch.Tensor) -> dict:
    """Items of random concepts: images see the concept through one linear map, sentences through another
    (as word tokens), and the teacher embeds both sides of a concept at the same point."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, len(concepts), (n,), generator=g)
    z = concepts[label]
    image = z @ torch.randn(8, 12, generator=torch.Generator().manual_seed(100)) + 0.05 * torch.randn(n, 12, generator=g)
    words = z @ torch.randn(8, 6, generator=torch.Generator().manual_seed(101))
    tokens = [(words[i] + 0.05 * torch.randn(3, 6, generator=g)).numpy() for i in range(n)]
    teacher = F.normalize(z @ torch.randn(8, 16, generator=torch.Generator().manual_seed(102)), dim=-1)
    return {"label": label, "image": image, "text": tokens, "teacher": teacher}


def test_a_student_learns_the_teachers_space_from_unpaired_data(tmp_path):
    concepts = torch.randn(40, 8, generator=torch.Generator().manual_seed(7))
    images, texts = synthetic_world(400, 1, concepts), synthetic_world(600, 2, concepts)  # unrelated draws
    train = PairedFeatures(("image", "text"),
                           {"image": images["image"], "text": TapInputs({"words": in_memory_tokens(texts["text"], 6)})},
                           {"image": [str(i) for i in range(400)], "text": [str(i) for i in range(600)]},
                           unpaired(400, 600, 0), {"image": images["teacher"], "text": texts["teacher"]})
    torch.manual_seed(0)
    method = dime()
    Trainer(method, TrainConfig(epochs=12, batch_size=64, lr=3e-3, threads=1), tmp_path).fit(
        train, None, progress=False)
    test = synthetic_world(200, 3, concepts)  # paired now: image i and sentence i share a concept
    method.eval()
    with torch.no_grad():
        za = method.encode("image", test["image"])
        zb = method.encode("text", TapInputs({"words": in_memory_tokens(test["text"], 6)}).take(range(200)))
    pairs = np.array([(i, j) for i in range(200) for j in range(200) if test["label"][i] == test["label"][j]])
    metrics = retrieval_metrics(za, zb, pairs)
    assert metrics["b2a"]["R@1"] > 60  # chance: one concept in 40 → R@1 ≈ 2.5
    assert metrics["a2b"]["R@1"] > 60


def test_distill_refuses_a_paired_data_source_and_a_pool_without_the_modality(tmp_path, shapes):
    runner = CliRunner()
    result = runner.invoke(app, ["distill", "--teacher", str(shapes["model"]), "--data", f"pairs:{shapes['pairs']}"])
    assert result.exit_code == 2 and "No such option '--data'" in result.output  # pools are --images / --texts
    lines = tmp_path / "captions.txt"
    lines.write_text("a red circle\n\na blue square\n")
    from latentfuse.config import DistillConfig, StoreConfig
    from latentfuse.distill import distill
    from latentfuse.errors import DataError

    config = DistillConfig(teacher=str(shapes["model"]), images=[f"lines:{lines}"], texts=[f"lines:{lines}"],
                           out=str(tmp_path / "student"), store=StoreConfig(root=str(shapes["store"])))
    with pytest.raises(DataError, match="--images lines:.*holds no images"):
        distill(config, progress=False)
    from latentfuse.errors import ConfigError

    config.images = [f"images:{shapes['images']}"]  # a config built in Python gets the CLI's range checks
    config.train = TrainConfig(batch_size=1)
    with pytest.raises(ConfigError, match=r"^DistillConfig: train.batch_size: expected a number >= 2, got 1$"):
        distill(config, progress=False)


def test_distill_cli_end_to_end_with_a_truncated_backbone(tmp_path, shapes):
    import csv

    import latentfuse

    rows = list(csv.DictReader(open(shapes["pairs"])))
    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(row["text"] for row in rows) + "\n")
    out = tmp_path / "student"
    result = CliRunner().invoke(app, [
        "-q", "distill", "--teacher", str(shapes["model"]), "--images", f"images:{shapes['images']}",
        "--texts", f"lines:{captions}", "--student", "image=truncated:stride16,text=glove-transformer",
        "--out", str(out), "--epochs", "60", "--store", str(shapes["store"]),
        "--set", "train.batch_size=32", "--set", "train.threads=1", "--set", "method.options.width=64",
        "--val", f"pairs:{shapes['pairs']}", "--set", "val_split=all", "--set", "test_split=all"])
    assert result.exit_code == 0, result.output
    student = latentfuse.load(out, backend="torch")  # torch forward hooks show which blocks run
    # packaged like a trained model: a query bank from its pools, and a test report under its QB-Norm
    teacher = latentfuse.load(shapes["model"])
    assert {len(bank) for bank in student.query_bank.values()} == {40, 120}
    assert (student.hubness.norm, student.hubness.beta) == (teacher.hubness.norm, teacher.hubness.beta)
    (report,) = json.loads((out / "report.json").read_text())
    assert report["task"] == "retrieval" and report["hubness"] == student.hubness_summary()
    assert report["t2i"]["R@5"] > 40  # text → image over 40 images: chance R@5 = 12.5
    assert "| dime |" in (out / "README.md").read_text() and not (out / "distill.json").exists()
    assert student.sides["image"].encoder == "efficientnet-lite0" and student.method.side_taps("image") == ["stride16"]
    teacher_scale = float(latentfuse.load(shapes["model"]).method.logit_scale().detach())
    assert student.method.config.logit_scale == pytest.approx(teacher_scale, rel=1e-3)  # the default: the teacher's
    assert student.sides["text"].encoder == "glove-6b-50d"

    ran = []
    backbone = student.encoder("image")._model()
    hooks = [block.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, block in enumerate(backbone._blocks)]
    hooks.append(backbone._conv_head.register_forward_hook(lambda *_: ran.append("head")))
    try:
        paths = sorted(shapes["images"].rglob("*.png"))
        images = student.encode_image(paths)
    finally:
        for hook in hooks:
            hook.remove()
    from latentfuse.encoders.efficientnet import _last_block_per_stride

    last16 = max(i for i, tap in _last_block_per_stride(backbone, 224).items() if tap == "stride16")
    assert ran and "head" not in ran and max(i for i in ran if i != "head") == last16  # later stages never ran
    assert len(backbone._blocks) - 1 > last16

    texts = student.encode_text([row["text"] for row in rows])
    index = {str(p): i for i, p in enumerate(paths)}
    pairs = np.array([(index[row["image"]], j) for j, row in enumerate(rows)])
    metrics = retrieval_metrics(torch.from_numpy(images), torch.from_numpy(texts), pairs)
    assert metrics["b2a"]["R@5"] > 40  # text → image over 40 images: chance R@5 = 12.5
    from helpers.shapes import is_match

    from latentfuse.config import StoreConfig
    from latentfuse.data import build_source
    from latentfuse.index import Index

    index = Index.create(tmp_path / "index", out)  # index and search take the student like any model
    index.add_source(build_source(f"images:{shapes['images']}"), store=StoreConfig(root=str(shapes["store"])),
                     progress=False)
    hits = index.search(text="a red circle", k=5)
    assert len(hits) == 5 and any(is_match(h.id, "red", "circle") for h in hits)
    report = CliRunner().invoke(app, ["info", "-m", str(out), "--cost"])
    assert report.exit_code == 0 and "efficientnet-lite0" in report.output and "glove-6b-50d" in report.output


def test_resume_with_another_teacher_in_the_same_folder_is_refused(tmp_path, shapes):
    """Kill a distillation, put another model where its teacher was, --resume: that used to be accepted (a student
    of two teachers); the run's identity holds the teacher's fingerprint."""
    import shutil

    import latentfuse
    from latentfuse.config import DistillConfig, StoreConfig
    from latentfuse.distill import distill
    from latentfuse.utils.outdir import OutputExistsError

    import csv

    teacher = tmp_path / "teacher"
    shutil.copytree(shapes["model"], teacher)
    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(row["text"] for row in csv.DictReader(open(shapes["pairs"]))) + "\n")
    config = DistillConfig(teacher=str(teacher), images=[f"images:{shapes['images']}"],
                           texts=[f"lines:{captions}"], student="image=truncated:stride16",
                           out=str(tmp_path / "student"), store=StoreConfig(root=str(shapes["store"])),
                           train=TrainConfig(epochs=1, batch_size=32, threads=1), method=StudentMethod({"width": 32}))
    distill(config, progress=False)
    other = latentfuse.load(teacher)
    with torch.no_grad():
        next(other.method.parameters()).add_(0.5)  # another model, saved where the teacher was
    other.save_pretrained(teacher, overwrite=True)
    with pytest.raises(OutputExistsError, match="teacher_fingerprint"):
        distill(config, resume=True, progress=False)
