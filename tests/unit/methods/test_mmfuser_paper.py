"""MMFuser's `paper` preset is the official projector block: MMFuser's ``MSCrossAttnBlock.forward``
(llava/model/multimodal_projector/ms_cross_attn.py) and Deformable-DETR's ``MSDeformAttn.forward`` with its
pure-PyTorch core ``ms_deform_attn_core_pytorch``, transcribed below, give the same tokens on the same weights —
the deepest level queries only the shallower ones."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from latentfuse.errors import ConfigError
from latentfuse.methods import build_method, make_config

SIDES = {"s8": 8, "s4": 4, "s2": 2, "s2b": 2, "deep": 2}  # grid side per level; the last is the query layer
DIMS = {"image": {tap: 6 + i for i, tap in enumerate(SIDES)}, "text": 10}


# ---------------------------------------------------------------- the official code, transcribed

def ms_deform_attn_core_pytorch(value, value_spatial_shapes, sampling_locations, attention_weights):
    n, _, m, d = value.shape
    _, lq, m, levels, points, _ = sampling_locations.shape
    value_list = value.split([h * w for h, w in value_spatial_shapes], dim=1)
    sampling_grids = 2 * sampling_locations - 1
    sampled = []
    for lid, (h, w) in enumerate(value_spatial_shapes):
        value_l = value_list[lid].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        grid_l = sampling_grids[:, :, :, lid].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    attention_weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, levels * points)
    output = (torch.stack(sampled, dim=-2).flatten(-2) * attention_weights).sum(-1).view(n, m * d, lq)
    return output.transpose(1, 2).contiguous()


def ms_deform_attn(module, query, reference_points, input_flatten, input_spatial_shapes):
    """MSDeformAttn.forward (2-d reference points, no padding mask), on our module's weights."""
    n_heads, n_levels, n_points, d_model = module.heads, module.levels, module.points, module.width
    n, len_q, _ = query.shape
    n, len_in, _ = input_flatten.shape
    value = module.value_proj(input_flatten).view(n, len_in, n_heads, d_model // n_heads)
    sampling_offsets = module.sampling_offsets(query).view(n, len_q, n_heads, n_levels, n_points, 2)
    attention_weights = module.attention_weights(query).view(n, len_q, n_heads, n_levels * n_points)
    attention_weights = F.softmax(attention_weights, -1).view(n, len_q, n_heads, n_levels, n_points)
    offset_normalizer = torch.stack([input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]], -1)
    sampling_locations = reference_points[:, :, None, :, None, :] \
        + sampling_offsets / offset_normalizer[None, None, None, :, None, :]
    shapes = [tuple(int(v) for v in shape) for shape in input_spatial_shapes]
    output = ms_deform_attn_core_pytorch(value, shapes, sampling_locations, attention_weights)
    return module.output_proj(output)


def get_reference_points(spatial_shapes):
    reference_points_list = []
    for h, w in spatial_shapes:
        ref_y, ref_x = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32),
                                      torch.linspace(0.5, w - 0.5, w, dtype=torch.float32), indexing="ij")
        reference_points_list.append(torch.stack((ref_x.reshape(-1)[None] / w, ref_y.reshape(-1)[None] / h), -1))
    return torch.cat(reference_points_list, 1)[:, :, None]


def official_block(block, srcs, n_levels=4):
    """MSCrossAttnBlock.forward: select_layer = range(n_levels), query_layer = -1, pos = None."""
    src_flatten, spatial_shapes = [], []
    for lvl in range(n_levels):
        src = srcs[lvl]
        e = int(math.sqrt(src.shape[1]))
        spatial_shapes.append((e, e))
        src_flatten.append(src)
    feat = torch.cat(src_flatten, 1)
    spatial_shapes = torch.as_tensor(spatial_shapes, dtype=torch.long)
    query = srcs[-1]
    query_e = int(math.sqrt(query.shape[1]))
    reference_points = get_reference_points([(query_e, query_e)])
    attn = ms_deform_attn(block.cross_attn, block.query_norm(query), reference_points, block.feat_norm(feat),
                          spatial_shapes)
    attn1 = block.norm1(attn)
    spatial_shapes_attn = torch.as_tensor([(query_e, query_e)], dtype=torch.long)
    attn2 = ms_deform_attn(block.self_attn, attn1, get_reference_points([(query_e, query_e)]), attn1,
                           spatial_shapes_attn)
    attn = attn + block.gamma2 * attn2
    return query + block.gamma1 * attn


# ---------------------------------------------------------------- the checks

def paper_fuser(**extra):
    options = {"preset": "paper", "taps": list(SIDES), "width": 32, "dim": 8, "hidden": 16, **extra}
    return build_method("mmfuser", DIMS, options).heads["image"]


def tokens(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {tap: (torch.randn(2, side * side, DIMS["image"][tap], generator=gen), torch.ones(2, side * side,
                                                                                           dtype=torch.bool))
            for tap, side in SIDES.items()}


def test_the_paper_preset_is_the_official_block_on_the_same_weights():
    fuser = paper_fuser()
    block = fuser.block
    assert block.deformable and block.shallow_only and fuser.level is None and not fuser.cfg.pos_embed
    assert (block.cross_attn.levels, block.cross_attn.heads, block.cross_attn.points) == (4, 16, 4)
    assert (block.self_attn.levels, block.self_attn.heads) == (1, 16)
    assert float(block.gamma1.detach().abs().max()) == 0 and fuser.cfg.mixup_alpha == 0
    with torch.no_grad():  # γ = 0 is the identity: open the gates and perturb every weight, so all of it counts
        for parameter in block.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(parameter.numel())))
        x = tokens()
        levels, masks, pos = fuser.levels(x)
        ours = block(levels, masks, pos)
        theirs = official_block(block, levels)
    assert float((ours - levels[-1]).abs().max()) > 0.1  # the block does something
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_the_query_level_is_no_key_in_the_paper_preset_and_is_one_by_default():
    """kv_levels: shallow — the deep tokens reach the cross-attention only as queries (zero its query weights
    and the deep level's values no longer matter); kv_levels: all — they are keys/values too."""
    for kv_levels, deep_is_a_value in (("shallow", False), ("all", True)):
        fuser = paper_fuser(kv_levels=kv_levels)
        with torch.no_grad():
            levels, masks, pos = fuser.levels(tokens())
            values = fuser.block.feat_norm(torch.cat(levels if deep_is_a_value else levels[:-1], 1))
            assert fuser.block.cross_attn.levels == (5 if deep_is_a_value else 4)
            cross, _ = fuser.block.cross(levels, masks, pos)
            expected = fuser.block.cross_attn(fuser.block.query_norm(levels[-1]), values,
                                              [lv.shape[1] for lv in (levels if deep_is_a_value else levels[:-1])])
        torch.testing.assert_close(cross, expected)


def test_the_preset_is_mmfusers_and_options_beside_it_win():
    """MMFuser's config extends FuseMix's and used to inherit its `paper` preset: FuseMix's adapter settings,
    applied silently."""
    assert make_config("mmfuser", {"preset": "paper"}).kv_levels == "shallow"
    assert make_config("mmfuser", {"preset": "paper", "points": 2}).points == 2
    assert make_config("fusemix", {"preset": "paper"}).n_blocks == 4  # FuseMix's own preset is untouched
    with pytest.raises(ConfigError, match="kv_levels: shallow needs at least 2 taps"):
        make_config("mmfuser", {"kv_levels": "shallow", "taps": ["head"]})


def test_standard_attention_takes_the_shallow_key_set_too():
    method = build_method("mmfuser", DIMS, {"taps": list(SIDES), "width": 32, "heads": 4, "dim": 8, "hidden": 16,
                                            "kv_levels": "shallow", "gamma_init": 0.5})
    shares = method.heads["image"].level_attention(tokens())
    assert list(shares) == list(SIDES)[:-1] and sum(shares.values()) == pytest.approx(1.0, abs=1e-5)
