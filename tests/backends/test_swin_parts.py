"""Swin-UNETR pieces that need no training: the masked loss, supervision, patches, options, devices, weights."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from napari_fewshot3d.backends import get_backend, route_options
from napari_fewshot3d.backends.swin.inference import window_for
from napari_fewshot3d.backends.swin.network import build_network, check_patch, grad_scaler, schedule_for, uses_amp
from napari_fewshot3d.backends.swin.resolution import coarse_factors, coarsen, refine
from napari_fewshot3d.backends.swin.sampling import PatchSampler, supervision
from napari_fewshot3d.backends.swin.training import learning_rate, masked_loss
from napari_fewshot3d.backends.swin.volf import FUSION_CLASSES, fuse, fusion_sample
from napari_fewshot3d.backends.swin.weights import load_into, read_checkpoint
from napari_fewshot3d.cli.options import FLAGS
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.support import SupportSet


def _loss_and_grad(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[float, torch.Tensor]:
    leaf = logits.clone().requires_grad_(True)
    loss = masked_loss(leaf, target, weight)
    loss.backward()
    return float(loss.detach()), leaf.grad.clone()


def test_masked_loss_ignores_unpainted_slices_and_only_them():
    rng = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 2, 8, 8, 6, generator=rng)
    target = (torch.rand(1, 2, 8, 8, 6, generator=rng) > 0.5).float()
    weight = torch.zeros_like(target)
    weight[..., 1] = 1  # slice 1 painted for both classes
    weight[:, 1, ..., 4] = 1  # slice 4 known for class 1 only
    loss, grad = _loss_and_grad(logits, target, weight)
    assert torch.all(grad[weight == 0] == 0), "an unpainted voxel moved the network"
    assert torch.any(grad[weight == 1] != 0)

    relabelled = target.clone()
    relabelled[..., 0] = 1 - relabelled[..., 0]  # unpainted for both
    relabelled[:, 0, ..., 4] = 1 - relabelled[:, 0, ..., 4]  # painted for class 1 only, so unknown for class 0
    loss2, grad2 = _loss_and_grad(logits, relabelled, weight)
    assert loss2 == loss and torch.equal(grad2, grad)

    painted_change = target.clone()
    painted_change[..., 1] = 1 - painted_change[..., 1]
    loss3, _ = _loss_and_grad(logits, painted_change, weight)
    assert abs(loss3 - loss) > 1e-3


def test_masked_loss_with_nothing_known_is_zero():
    logits = torch.randn(1, 1, 4, 4, 4)
    assert float(masked_loss(logits, torch.ones_like(logits), torch.zeros_like(logits))) == 0.0


def test_supervision_is_per_class_known_slices(blob_volume):
    _, labels = blob_volume
    painted = np.zeros_like(labels.array)
    painted[:, :, 15] = labels.array[:, :, 15]  # both classes
    painted[:, :, 10] = np.where(labels.array[:, :, 10] == 1, 1, 0)  # class 1 only (class 2 absent there)
    support = SupportSet.from_labels(labels.with_array(painted), 2, empty_slices=[0])
    targets, weights = supervision(support)
    known = [np.flatnonzero(w.any(axis=(0, 1))).tolist() for w in weights]
    assert known == [[0, 10, 15], [0, 15]]
    assert np.array_equal(targets[0], (painted == 1) & (weights[0] == 1))
    assert np.all(weights[:, :, :, 15] == 1)  # a known slice is known in full


def test_patches_hold_a_known_slice(blob_volume):
    image, labels = blob_volume
    painted = np.zeros_like(labels.array)
    painted[:, :, 14] = labels.array[:, :, 14]
    support = SupportSet.from_labels(labels.with_array(painted), 2)
    sampler = PatchSampler.build(image.array.astype(np.float32), support, (64, 64, 32), seed=1)
    for _ in range(10):
        patch = sampler.sample()
        assert patch["image"].shape == (1, 64, 64, 32)  # the volume is padded up to the patch
        assert patch["target"].shape == patch["weight"].shape == (2, 64, 64, 32)
        assert patch["weight"].sum() >= 40 * 36  # one whole known slice
        assert np.all(patch["target"] <= patch["weight"])


def test_coarse_factors_keep_the_slicing_axis():
    assert coarse_factors([3.0, 3.0, 3.0], 2, 6.0) == (2, 2, 1)
    assert coarse_factors([0.8, 1.5, 5.0], 0, 6.0) == (1, 4, 1)  # never below the volume's own spacing
    assert coarse_factors([0.8, 0.8, 0.8], 1, 0.0) == (1, 1, 1)


def test_coarsen_then_refine_returns_to_the_grid(blob_volume):
    _, labels = blob_volume  # 40x36x30: sides that do not divide by 3
    masks = np.stack([labels.array == 1, labels.array == 2]).astype(np.float32)
    coarse = coarsen(masks, (3, 3, 1))
    assert coarse.shape == (2, 14, 12, 30)
    assert np.allclose(coarse[:, 2:6, 2:6].sum(), masks[:, 6:18, 6:18].sum() / 9)  # block means
    fine = refine(coarse, (3, 3, 1), labels.shape) >= 0.5
    assert fine.shape == masks.shape
    for c in range(2):
        overlap = 2 * (fine[c] & (masks[c] > 0)).sum() / (fine[c].sum() + masks[c].sum())
        assert overlap > 0.85, (c, overlap)


def test_prediction_windows_fit_the_image_but_not_below_the_network_depth():
    assert window_for((61, 51, 112), (128, 128, 128)) == (64, 64, 128)
    assert window_for((20, 18, 30), (128, 128, 128)) == (32, 32, 64)  # 32 on every side cannot run


def test_coarse_patches_keep_whole_known_slices(blob_volume):
    image, labels = blob_volume
    painted = np.zeros_like(labels.array)
    painted[:, :, 14] = labels.array[:, :, 14]
    support = SupportSet.from_labels(labels.with_array(painted), 2)
    sampler = PatchSampler.build(image.array.astype(np.float32), support, (64, 64, 32), 1, (2, 2, 1))
    assert sampler.image.shape == (64, 64, 32)  # the 20x18 coarse slices, padded
    assert sampler.weights[:, :20, :18, 14].all() and sampler.weights.sum() == 2 * 20 * 18
    assert abs(int(sampler.targets[0].sum()) * 4 - int((painted == 1).sum())) < 0.1 * (painted == 1).sum()


def test_devices_and_schedules():
    assert schedule_for("cuda").feature_size == 48 and schedule_for("cpu").feature_size == 12
    assert uses_amp("cuda") and not uses_amp("cpu") and not uses_amp("mps")
    assert not grad_scaler("cpu").is_enabled()
    from napari_fewshot3d.backends.swin.network import autocast

    assert isinstance(autocast("cpu"), contextlib.nullcontext)
    with pytest.raises(InputError, match="multiples of 32"):
        check_patch((32, 32, 32))


def test_learning_rate_warms_up_and_anneals_with_the_budget():
    cpu = schedule_for("cpu").with_options(learning_rate=1.0, warmup_steps=4, anneal=True)
    rates = [learning_rate(cpu, step, step / 10) for step in range(10)]
    assert rates[0] == pytest.approx(0.25) and rates[3] == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.3)))
    assert all(a > b for a, b in zip(rates[3:-1], rates[4:], strict=True))  # annealing after the warm-up
    assert learning_rate(cpu, 50, 1.0) == pytest.approx(0.0)
    gpu = schedule_for("cuda")
    assert {learning_rate(gpu, s, s / 100) for s in range(100)} == {gpu.learning_rate}


def test_backend_options_are_checked_and_routed():
    with pytest.raises(InputError, match="takes no option weights"):
        get_backend("interpolate", weights="model_swinvit.pt")
    with pytest.raises(InputError, match="multiple of 12"):
        get_backend("swin-unetr", feature_size=10)
    with pytest.raises(InputError, match="max-steps"):
        get_backend("swin-unetr", max_steps=0)
    with pytest.raises(InputError, match="no such weights file"):
        get_backend("swin-unetr", weights="/nonexistent/model_swinvit.pt")
    routed = route_options(["interpolate", "swin-unetr"], {"max_steps": 3})
    assert routed == {"interpolate": {}, "swin-unetr": {"max_steps": 3}}
    with pytest.raises(InputError, match="^--feature-size is not an option of interpolate"):
        route_options(["interpolate"], {"feature_size": 12}, FLAGS)  # named as the command line names it


def _ssl_checkpoint(path, feature_size=12, drop=None, extra=True):
    """A file laid out like MONAI's public model_swinvit.pt, from a real network's encoder."""
    network = build_network(2, feature_size)
    state = {}
    for name, tensor in network.state_dict().items():
        if name.startswith("swinViT.") and name != drop:
            key = "module." + name.removeprefix("swinViT.")
            state[key.replace(".linear1.", ".fc1.").replace(".linear2.", ".fc2.")] = tensor.clone()
    if extra:
        state["module.contrastive_head.weight"] = torch.zeros(3, 3)
    torch.save({"epoch": 10, "state_dict": state}, path)
    return network


def test_monai_ssl_weights_report_what_loaded(tmp_path):
    dropped = "swinViT.layers2.0.blocks.1.mlp.linear1.weight"
    source = _ssl_checkpoint(tmp_path / "model_swinvit.pt", drop=dropped)
    backend = get_backend("swin-unetr", weights=str(tmp_path / "model_swinvit.pt"))
    assert backend.checkpoint.kind == "monai-ssl" and backend.checkpoint.feature_size == 12
    target = build_network(2, 12)
    report = load_into(target, backend.checkpoint)
    encoder = [n for n in source.state_dict() if n.startswith("swinViT.")]
    assert len(report.loaded) == len(encoder) - 1
    assert dropped in report.missing and "decoder1.conv_block.conv1.conv.weight" in report.missing
    assert report.unused == ["swinViT.contrastive_head.weight"]
    name = "swinViT.layers3.0.blocks.0.mlp.linear2.weight"  # renamed from fc2
    assert torch.equal(target.state_dict()[name], source.state_dict()[name])
    assert not torch.equal(target.state_dict()[dropped], source.state_dict()[dropped])
    summary = report.summary()
    assert (
        f"loaded {len(encoder) - 1} tensors" in summary and "decoder" in summary and "1 in the file unused" in summary
    )


def test_weights_refused_when_they_cannot_fit(tmp_path):
    _ssl_checkpoint(tmp_path / "wide.pt", feature_size=24, extra=False)
    with pytest.raises(InputError, match="feature size 24"):
        get_backend("swin-unetr", weights=str(tmp_path / "wide.pt"), feature_size=12)
    torch.save({"state_dict": {"module.head.weight": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="patch embedding"):
        read_checkpoint(tmp_path / "other.pt")
    torch.save(
        {"state_dict": {"module.patch_embed.proj.weight": torch.zeros(12, 1, 2, 2, 2)}, "x": Exception()},
        tmp_path / "code.pt",
    )
    with pytest.raises(InputError, match="read safely"):
        read_checkpoint(tmp_path / "code.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="read safely"):
        read_checkpoint(tmp_path / "text.pt")


def test_fusion_mixes_by_its_label():
    rng = np.random.default_rng(0)
    fused, label = fuse(np.ones((64, 64, 32), np.float32), np.zeros((64, 64, 32), np.float32), rng)
    assert label.min() == 0 and label.max() < FUSION_CLASSES and len(np.unique(label)) > 1
    assert np.allclose(fused, label / (FUSION_CLASSES - 1))  # a mix of ones and zeros is the coefficient itself
    image, label = fusion_sample([np.random.default_rng(1).random((70, 80, 40), np.float32)], (64, 64, 32), rng)
    assert image.shape == label.shape == (64, 64, 32)


def test_only_parts_touching_the_painting_are_kept():
    from napari_fewshot3d.backends.swin.inference import connected_to_painting

    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:12] = 1  # the structure, painted on slice 5
    labels[14:18, 14:18, 2:6] = 1  # look-alike tissue elsewhere, never painted
    labels[2:6, 12:18, 10:18] = 2  # a second class, painted on slice 12
    painted = np.zeros_like(labels)
    painted[2:8, 2:8, 5] = 1
    painted[3:5, 13:16, 12] = 2
    kept = connected_to_painting(labels, painted, [1, 2])
    assert (kept[2:8, 2:8, 2:12] == 1).all() and (kept[2:6, 12:18, 10:18] == 2).all()
    assert not kept[14:18, 14:18, 2:6].any()
    assert not connected_to_painting(labels, np.zeros_like(labels), [1, 2]).any()
