"""DepthSplat with any number of context views and non-square images (issue 13), in eval and in
training:

* V in {2, 3, 4, 6} and non-square sizes: finite outputs of the right shapes, depth in [near, far];
  one V >= 3 non-square run per DPT wiring branch ((8,1) cpu_tiny, (4,1) small, (2,2) base,
  (4,2) dl3dv base with the nearest-3 restriction active);
* the view count is set from the batch in one place: the same encoder runs V = 2, 3, 2 in a row,
  and a ModelWrapper training step (forward, render, loss, backward, optimizer step) runs with 2
  then 3 context views;
* view permutations. Upstream is view-permutation-equivariant (up to float rounding) wherever the
  partner *slot order* of every view is carried along by the permutation:
    - V = 2 (one partner per view; the shifted-window mask is the textbook one),
    - a nearest-view restriction (partners in camera-distance order, which a permutation keeps),
  and the cost volume (a mean over partners), the U-Net cross-view attention (softmax over all
  views' tokens) and every per-view stage are equivariant anyway. It is NOT equivariant for
  V >= 3 without a restriction: the partners are then the other views in increasing index, and
  the multi-view transformer adds its shifted-window mask tiled over the partner slots (key of
  token t, partner slot p masked as token (t*m + p) mod T; upstream-facts, MVSplat multi-view
  transformer, "the same code is in DepthSplat's transformer"), so which partner sits in which slot
  changes the result. The test pins that too: the CNN features permute exactly, the transformer
  features do not.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
import torch

from depthsplat.config import PRESETS, preset_cpu_tiny
from depthsplat.encoder import EncoderDepthSplat
from depthsplat.views import nearest_view_partners
from splatcore.testing.parity import apply_deterministic_weights

NEAR, FAR = 1.0, 100.0


def _context(b: int, v: int, h: int, w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Cameras on a line with distinct gaps (every pairwise distance differs), looking along +z."""
    g = torch.Generator().manual_seed(seed)
    gaps = 0.1 + 0.2 * torch.rand(b, v, generator=g)
    x = gaps.cumsum(dim=1)
    extrinsics = torch.eye(4).repeat(b, v, 1, 1)
    extrinsics[..., 0, 3] = x - x.mean(dim=1, keepdim=True)
    extrinsics[..., 1, 3] = 0.02 * torch.randn(b, v, generator=g)
    fx = 0.8 + 0.2 * torch.rand(b, v, generator=g)
    intrinsics = torch.zeros(b, v, 3, 3)
    intrinsics[..., 0, 0], intrinsics[..., 1, 1] = fx, fx * w / h
    intrinsics[..., 0, 2] = intrinsics[..., 1, 2] = 0.5
    intrinsics[..., 2, 2] = 1.0
    return {
        "image": torch.rand(b, v, 3, h, w, generator=g),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "near": torch.full((b, v), NEAR),
        "far": torch.full((b, v), FAR),
    }


def _encoder(cfg) -> EncoderDepthSplat:
    encoder = EncoderDepthSplat(cfg)
    apply_deterministic_weights(encoder, 0)  # non-zero heads: every output depends on every stage
    return encoder.eval()


@pytest.fixture(scope="module")
def tiny():
    return _encoder(preset_cpu_tiny())


def _check_outputs(out, b, v, h, w):
    g = out["gaussians"]
    n = v * h * w
    assert out["depths"].shape == (b, v, h, w)
    assert g.means.shape == (b, n, 3) and g.covariances.shape == (b, n, 3, 3)
    assert g.opacities.shape == (b, n) and g.harmonics.shape[:3] == (b, n, 3)
    for tensor in (out["depths"], g.means, g.covariances, g.harmonics, g.opacities):
        assert bool(torch.isfinite(tensor).all())
    depth = out["depths"]
    assert depth.min() >= NEAR * (1 - 1e-4) and depth.max() <= FAR * (1 + 1e-4)


@pytest.mark.parametrize("v,h,w", [(2, 32, 64), (3, 64, 32), (4, 32, 64), (6, 32, 32)])
def test_any_view_count_and_non_square_sizes(tiny, v, h, w):
    with torch.no_grad():
        out = tiny(_context(1, v, h, w, seed=v), 0)
    _check_outputs(out, 1, v, h, w)


@pytest.mark.parametrize(
    "preset,overrides,b,v,h,w",
    [
        ("re10k_small", {}, 1, 3, 32, 48),  # DPT branch (4, 1), lowest 1/4
        ("re10k_base", {"monodepth_vit_type": "vits"}, 1, 3, 32, 48),  # branch (2, 2) (ViT-S for speed)
        # branch (4, 2), nearest-3 of 4 views, two scenes whose cameras rank differently
        ("dl3dv_base", {"monodepth_vit_type": "vits"}, 2, 4, 32, 64),
    ],
)
def test_every_dpt_branch_runs_with_three_or_more_views_on_non_square_images(preset, overrides, b, v, h, w):
    encoder = _encoder(PRESETS[preset](**overrides))
    context = _context(b, v, h, w, seed=1)
    if b > 1:
        partners = nearest_view_partners(context["extrinsics"], encoder.cfg.costvolume_nearest_n_views)
        assert partners.shape == (b, v, 2) and not torch.equal(partners[0], partners[1])
    with torch.no_grad():
        out = encoder(context, 0)
    _check_outputs(out, b, v, h, w)


def test_view_count_follows_the_batch_from_one_call_to_the_next(tiny):
    """The U-Nets' cross-view groups are reset from each batch: V = 2, 3, 2 with the same module
    gives the same V = 2 result before and after the 3-view call."""
    unets = [m for m in tiny.modules() if type(m).__name__ == "UNet"]
    assert len(unets) == 2  # the depth regressor's and the Gaussian regressor's
    groups = [m for u in unets for m in u.modules() if type(m).__name__ == "AttentionBlock"]
    assert groups
    first = _context(1, 2, 32, 32, seed=4)
    with torch.no_grad():
        before = tiny(first, 0)["depths"]
        tiny(_context(1, 3, 32, 32, seed=5), 0)
        assert {m.num_views for m in groups} == {3}
        after = tiny(first, 0)["depths"]
    assert {m.num_views for m in groups} == {2}
    assert torch.equal(before, after)


def _permute(context, order):
    return {key: value[:, order] for key, value in context.items()}


def _run(encoder, context):
    intermediates: dict = {}
    with torch.no_grad():
        out = encoder(context, 0, intermediates=intermediates)
    return out, intermediates


def _assert_equivariant(out, permuted_out, order, v, h, w, rtol=1e-4):
    depth, depth_p = out["depths"], permuted_out["depths"]
    scale = depth.abs().max()
    assert (depth_p - depth[:, order]).abs().max() <= rtol * scale
    means = out["gaussians"].means.reshape(1, v, h * w, 3)[:, order]
    means_p = permuted_out["gaussians"].means.reshape(1, v, h * w, 3)
    assert (means_p - means).abs().max() <= rtol * means.abs().max()
    opacities = out["gaussians"].opacities.reshape(1, v, h * w)[:, order]
    assert (permuted_out["gaussians"].opacities.reshape(1, v, h * w) - opacities).abs().max() <= 1e-5


@contextlib.contextmanager
def _nearest_views(encoder, n):
    """The same weights with ``costvolume_nearest_n_views = multiview_trans_nearest_n_views = n``
    (the encoder reads its config at every forward)."""
    original = encoder.cfg
    encoder.cfg = replace(original, costvolume_nearest_n_views=n, multiview_trans_nearest_n_views=n)
    try:
        yield encoder
    finally:
        encoder.cfg = original


def test_two_views_swapped_give_the_swapped_outputs(tiny):
    context = _context(1, 2, 32, 32, seed=6)
    out, _ = _run(tiny, context)
    swapped, _ = _run(tiny, _permute(context, [1, 0]))
    _assert_equivariant(out, swapped, [1, 0], 2, 32, 32)


def test_nearest_view_restriction_makes_four_views_permutation_equivariant(tiny):
    """With nearest-3 of 4 views the partners come in camera-distance order, which a permutation
    of the views carries along, so the slot-dependent mask sees the same pairs (at 32 x 32 the
    feature map is 4 x 4 with a 1-token window shift, where the slot-tiled mask does depend on the
    slot: see the next test)."""
    context = _context(1, 4, 32, 32, seed=7)
    order = [2, 0, 3, 1]
    partners = nearest_view_partners(context["extrinsics"], 3)
    permuted_partners = nearest_view_partners(context["extrinsics"][:, order], 3)
    inverse = torch.argsort(torch.tensor(order))
    assert torch.equal(inverse[partners[0, order]], permuted_partners[0])  # same pairs, same slots
    with _nearest_views(tiny, 3) as encoder:
        out, _ = _run(encoder, context)
        permuted, _ = _run(encoder, _permute(context, order))
    _assert_equivariant(out, permuted, order, 4, 32, 32)


def test_three_unrestricted_views_are_not_permutation_equivariant_as_upstream(tiny):
    """Swapping views 0 and 1 of 3 keeps their partner slots ((1, 2) and (0, 2) in index order)
    but reverses view 2's ((0, 1) now holds the old (1, 0)); the slot-tiled shifted-window mask
    then differs, and through the next layers every view's transformer output changes.

    With two partner slots, swapping them moves a key from mask column 2t mod T to 2t + 1 mod T,
    i.e. to the horizontally adjacent token; that changes the mask only where a shifted-window
    region boundary lies between the two, which needs an odd horizontal shift (feature width / 4):
    32 px wide -> 4 features at 1/8 -> shift 1. (At 64 px the shift is 2 and this particular
    permutation happens to be harmless.)"""
    context = _context(1, 3, 32, 32, seed=8)
    order = [1, 0, 2]
    _, inter = _run(tiny, context)
    _, inter_p = _run(tiny, _permute(context, order))
    cnn, cnn_p = inter["inter_cnn_features_s0"], inter_p["inter_cnn_features_s0"]
    assert torch.equal(cnn_p, cnn[order])  # per-view stage: equivariant
    mv, mv_p = inter["inter_mv_transformer_features"], inter_p["inter_mv_transformer_features"]
    difference = (mv_p - mv[order]).abs().amax(dim=(1, 2, 3)) / mv.abs().max()
    assert bool((difference > 1e-3).all()), difference  # not a permutation of the original output


def test_training_step_with_a_view_count_that_changes_between_batches():
    """A ModelWrapper training step (encoder in train mode with intermediate-depth supervision,
    rendering, MSE, backward, optimizer step) with 2 then 3 context views of 32 x 64: the loss is finite, the
    cross-view groups follow the batch, and the U-Nets with cross-view attention get finite,
    non-zero gradients and are updated."""
    from splatcore.main import build_model, compose_config

    cfg = compose_config(["+experiment=depthsplat_synthetic_cpu", "loss=[mse]", "dataset.image_shape=[32,64]"])
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    # the ViT stays out of the optimisation here (its backward is most of the cost on a CPU and
    # does not depend on the view count); everything after it trains
    model.encoder.depth_predictor.pretrained.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    head = model.encoder.gaussian_regressor[3]
    for views in (2, 3):
        context = _context(1, views, 32, 64, seed=10 + views)  # non-square
        target = {key: value[:, :1] for key, value in _context(1, 2, 32, 64, seed=20 + views).items()}
        for view_set in (context, target):
            view_set["index"] = torch.arange(view_set["image"].shape[1])[None]
        batch = {"context": context, "target": target, "scene": ["synthetic"]}
        before = {name: p.detach().clone() for name, p in model.encoder.named_parameters()}
        optimizer.zero_grad()
        loss = model.training_step(batch, 0)
        assert torch.isfinite(loss)
        loss.backward()
        assert {m.num_views for m in model.encoder.modules() if type(m).__name__ == "AttentionBlock"} == {views}
        grads = [p.grad for p in head.parameters() if p.grad is not None]
        assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
        assert any(bool(g.abs().max() > 0) for g in grads)
        optimizer.step()
        changed = [n for n, p in model.encoder.named_parameters() if not torch.equal(p, before[n])]
        assert any(n.startswith("gaussian_regressor.3.") for n in changed)
        assert any(n.startswith("depth_predictor.regressor.0.3.") for n in changed)
