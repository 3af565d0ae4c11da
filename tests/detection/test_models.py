"""Faster / Mask R-CNN end to end (tiny nets, 32 px): a data-parallel train step of the training
system, padding invariance, empty images, inference shapes; Fast R-CNN, R-CNN and FPN / RoIPool
variants by abstract evaluation."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vai_jax.data.pipeline import pad_objects, stack_records
from vai_jax.data.shapes import ShapesDataset
from vai_jax.detection import RCNN, FastRCNN, FasterRCNN, RegionProposalNetwork, RoIStage, mask_rcnn
from vai_jax.detection.inputs import detection_preprocess
from vai_jax.detection.proposals import sliding_window_proposals
from vai_jax.detection.losses import detection_loss
from vai_jax.nn.fpn import FPN
from vai_jax.train import parallel
from vai_jax.train.state import TrainState
from vai_jax.train.step import make_train_step

SIZE, B, M = 32, 8, 4


class TinyBackbone(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
        feats = {}
        for i in range(3):
            x = nn.relu(nn.Conv(8, (3, 3), strides=2, name=f"conv{i + 1}")(x))
            feats[f"stage{i + 1}"] = x  # strides 2, 4, 8
        return None, feats


def _stage(in_features=("stage2",), **kw):
    return RoIStage(6, in_features, hidden=16, num_samples=16, mask_features=8, mask_convs=1,
                    max_detections=8, **kw)


def _rpn(in_features=("stage2",), anchor_sizes=((8.0, 16.0),)):
    return RegionProposalNetwork(in_features, anchor_sizes=anchor_sizes, aspect_ratios=(0.5, 1.0),
                                 pre_nms_top_n_train=64, post_nms_top_n_train=24, pre_nms_top_n_test=64,
                                 post_nms_top_n_test=24)


@pytest.fixture(scope="module")
def batch():
    ds = ShapesDataset("detection", num_examples=B, image_size=SIZE, min_objects=1, max_objects=3, seed=1)
    recs = [pad_objects({k: v for k, v in ds[i].items() if k in ("image", "boxes", "classes", "valid", "masks")}, M)
            for i in range(B)]
    return stack_records(recs)


@pytest.fixture(scope="module")
def trained(batch):
    model = mask_rcnn(backbone=TinyBackbone(), rpn=_rpn(), roi_stage=_stage())
    variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), {"image": jnp.zeros((1, SIZE, SIZE, 3))},
                                           train=False))()
    mesh = parallel.make_mesh()
    state = parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.sgd(0.05),
                                                 rng=jax.random.PRNGKey(1)), mesh)
    step = parallel.data_parallel(make_train_step(detection_loss, preprocess_fn=detection_preprocess), mesh,
                                  donate_state=False)
    return model, state, step


def test_train_step_is_finite_and_updates(trained, batch):
    _, state, step = trained
    new, metrics = step(state, batch)
    assert np.isfinite(float(metrics["loss"])) and float(metrics["finite"]) == 1.0
    assert float(metrics["grad_norm"]) > 0
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new.params, state.params)
    for part in ("rpn", "roi_stage", "backbone"):
        assert max(jax.tree.leaves(moved[part])) > 0, part


def test_loss_ignores_padded_objects(trained, batch):
    _, state, step = trained
    _, m0 = step(state, batch)
    b = {k: v.copy() for k, v in batch.items()}
    pad = ~b["valid"]
    assert pad.any()
    b["boxes"][pad] = np.array([1.0, 2.0, 20.0, 25.0], np.float32)
    b["classes"][pad] = 5
    b["masks"][pad] = True
    _, m1 = step(state, b)
    np.testing.assert_allclose(float(m1["loss"]), float(m0["loss"]), rtol=1e-6)
    b["boxes"][~pad] += 3.0  # a real object does change it
    _, m2 = step(state, b)
    assert abs(float(m2["loss"]) - float(m0["loss"])) > 1e-4


def test_mask_branch_runs_on_the_foreground_slots_only(trained, batch):
    model, state, _ = trained
    x = detection_preprocess({k: jnp.asarray(v) for k, v in batch.items()}, jax.random.PRNGKey(2), train=True)
    out = jax.jit(lambda v, x: model.apply(v, x, train=True))(jax.device_get(state.variables()), x)
    f = int(16 * 0.25)  # _stage(): num_samples 16, positive_fraction 0.25
    assert out["mask_logits"].shape[:2] == (B, f) and out["mask_targets"].shape[:2] == (B, f)
    labels = np.asarray(out["roi_labels"])
    assert (labels[:, :f] > 0).any() and not (labels[:, f:] > 0).any()  # no foreground left out


def test_images_without_objects_give_finite_loss(trained, batch):
    _, state, step = trained
    b = {k: v.copy() for k, v in batch.items()}
    b["valid"][:] = False
    b["boxes"][:] = 0
    new, metrics = step(state, b)
    assert np.isfinite(float(metrics["loss"])) and float(metrics["finite"]) == 1.0


def test_inference_outputs(trained, batch):
    model, state, _ = trained
    x = detection_preprocess({"image": jnp.asarray(batch["image"][:2])}, None, train=False)
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(state.variables(), x)
    assert out["boxes"].shape == (2, 8, 4) and out["scores"].shape == (2, 8)
    assert out["masks"].shape == (2, 8, 28, 28) and out["proposals"].shape == (2, 24, 4)
    v = np.asarray(out["valid"])
    boxes, masks = np.asarray(out["boxes"]), np.asarray(out["masks"])
    assert np.all((boxes >= 0) & (boxes <= SIZE))
    assert np.all((masks >= 0) & (masks <= 1))
    cls = np.asarray(out["classes"])[v]
    assert np.all((cls >= 0) & (cls < 6))
    s = np.asarray(out["scores"])
    assert np.all(np.diff(np.where(v, s, -1), axis=1) <= 1e-6)  # sorted, padding last


def _abstract(model, inputs, *, train):
    init_in = {k: v for k, v in inputs.items() if k in ("image", "proposals", "proposal_valid")}
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), init_in, train=False))
    return jax.eval_shape(lambda v: model.apply(v, inputs, train=train, mutable=["batch_stats"])[0], variables)


def _abstract_inputs(batch, proposals=None):
    x = {"image": jnp.zeros((2, SIZE, SIZE, 3)), "boxes": jnp.asarray(batch["boxes"][:2]),
         "classes": jnp.asarray(batch["classes"][:2]), "valid": jnp.asarray(batch["valid"][:2]),
         "masks": jnp.asarray(batch["masks"][:2]), "rng": jax.random.PRNGKey(0)}
    if proposals is not None:
        x["proposals"] = jnp.broadcast_to(proposals, (2,) + proposals.shape)
        x["proposal_valid"] = jnp.ones((2, proposals.shape[0]), bool)
    return x


def test_faster_rcnn_fpn_and_roi_pool_shapes(batch):
    x = _abstract_inputs(batch)
    levels = ("stage1", "stage2", "stage3")
    fpn = FasterRCNN(backbone=TinyBackbone(), fpn=FPN(levels, features=8),
                     rpn=_rpn(levels, anchor_sizes=((4.0,), (8.0,), (16.0,))), roi_stage=_stage(levels))
    out = _abstract(fpn, x, train=True)
    n_anchors = (16 * 16 + 8 * 8 + 4 * 4) * 2
    assert out["rpn_logits"].shape == (2, n_anchors) and out["cls_logits"].shape == (2, 16, 7)
    assert _abstract(fpn, x, train=False)["boxes"].shape == (2, 8, 4)
    pool = FasterRCNN(backbone=TinyBackbone(), rpn=_rpn(), roi_stage=_stage(pool_mode="pool"))
    assert _abstract(pool, x, train=True)["box_deltas"].shape == (2, 16, 7, 4)


def test_fast_rcnn_and_rcnn_shapes(batch):
    props = sliding_window_proposals((SIZE, SIZE), stride=8, sizes=(8.0, 16.0), aspect_ratios=(1.0,))
    x = _abstract_inputs(batch, props)
    fast = FastRCNN(backbone=TinyBackbone(), roi_stage=_stage(pool_mode="pool"))
    assert _abstract(fast, x, train=True)["cls_logits"].shape == (2, 16, 7)
    assert _abstract(fast, x, train=False)["boxes"].shape == (2, 8, 4)
    for stage, key in (("finetune", "cls_logits"), ("svm", "svm_scores")):
        rcnn = RCNN(backbone=TinyBackbone(), in_features="stage3", num_classes=6, crop_size=16, stage=stage,
                    descriptor_grid=2, num_samples=8, max_detections=5)
        assert _abstract(rcnn, x, train=True)[key].shape == (2, 8, 7)
    assert _abstract(rcnn, x, train=False)["scores"].shape == (2, 5)


def test_rcnn_descriptor_is_the_block_pooled_map_and_checks_the_grid(batch):
    from vai_jax.ops.roi_align import roi_align_batched

    props = sliding_window_proposals((SIZE, SIZE), stride=16, sizes=(12.0,), aspect_ratios=(1.0,))
    images = jnp.asarray(batch["image"][:2], jnp.float32) / 255.0
    rois = jnp.broadcast_to(props, (2,) + props.shape)
    rcnn = RCNN(backbone=TinyBackbone(), in_features="stage2", num_classes=6, crop_size=16, descriptor_grid=2)
    x = {"image": images, "proposals": rois, "proposal_valid": jnp.ones(rois.shape[:2], bool)}
    variables = jax.jit(lambda x: rcnn.init(jax.random.PRNGKey(0), x, train=False))(x)
    got = np.asarray(jax.jit(lambda v: rcnn.apply(v, images, rois, train=False,
                                                  method=RCNN.region_features))(variables))

    @jax.jit
    def reference_features(params):  # crop, then run the backbone on each crop
        crops = roi_align_batched(images, rois, 16, sampling_ratio=2, aligned=True)
        return TinyBackbone().apply({"params": params}, crops.reshape((-1, 16, 16, 3)),
                                    train=False)[1]

    feats = reference_features(variables["params"]["cnn"])
    f = np.asarray(feats["stage2"], np.float64)  # [B*R, 4, 4, 8]
    want = np.stack([f[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((1, 2)) for i in range(2) for j in range(2)], 1)
    np.testing.assert_allclose(got, want.reshape(2, len(props), 2 * 2 * 8), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="descriptor_grid"):
        RCNN(backbone=TinyBackbone(), in_features="stage2", num_classes=6, crop_size=16, descriptor_grid=3).init(
            jax.random.PRNGKey(0), x, train=False)


def test_sliding_windows_are_inside_the_image():
    p = np.asarray(sliding_window_proposals((32, 48), stride=8, sizes=(8.0, 24.0), aspect_ratios=(0.5, 1.0, 2.0)))
    assert p.ndim == 2 and p.shape[1] == 4 and len(p) > 24
    assert np.all(p[:, [0, 2]] <= 48) and np.all(p[:, [1, 3]] <= 32) and np.all(p >= 0)
    assert np.all(p[:, 2] - p[:, 0] >= 1) and np.all(p[:, 3] - p[:, 1] >= 1)


def test_rpn_head_contract_and_parameter_names(batch):
    from vai_jax.detection import RPNHead

    feats = {"a": jnp.zeros((2, 8, 8, 4)), "b": jnp.ones((2, 4, 4, 4)), "c": jnp.zeros((2, 4, 4, 6))}
    head = RPNHead(3, ("a", "b"), conv_features=5)
    out, variables = head.init_with_output(jax.random.PRNGKey(0), feats, train=False)
    assert out["logits"].shape == (2, (64 + 16) * 3) and out["deltas"].shape == (2, (64 + 16) * 3, 4)
    alone = head.clone(in_features="b").apply(variables, feats, train=False)  # level by level
    np.testing.assert_allclose(np.asarray(out["logits"][:, 64 * 3:]), np.asarray(alone["logits"]))
    assert sorted(variables["params"]) == ["bbox_pred", "cls_logits", "conv"]
    with pytest.raises(ValueError, match="equal channels"):
        RPNHead(3, ("a", "c")).init(jax.random.PRNGKey(0), feats, train=False)
    with pytest.raises(ValueError, match=r"RPNHead.in_features names \['d'\]"):
        RPNHead(3, "d").init(jax.random.PRNGKey(0), feats, train=False)
    # Inside the detectors the head's parameters are the RPN's own (rpn/conv, ...).
    model = FasterRCNN(backbone=TinyBackbone(), rpn=_rpn(), roi_stage=_stage())
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), {"image": jnp.zeros((1, SIZE, SIZE, 3))},
                                               train=False))["params"]
    assert sorted(params) == ["backbone", "roi_stage", "rpn"]
    assert sorted(params["rpn"]) == ["bbox_pred", "cls_logits", "conv"]
    assert sorted(params["roi_stage"]) == ["box_head"]


def test_stages_name_missing_features(batch):
    x = _abstract_inputs(batch)
    bad_rpn = FasterRCNN(backbone=TinyBackbone(), rpn=_rpn(("stage9",)), roi_stage=_stage())
    with pytest.raises(ValueError, match=r"RegionProposalNetwork.in_features names \['stage9'\]"):
        _abstract(bad_rpn, x, train=False)
    bad_roi = FasterRCNN(backbone=TinyBackbone(), rpn=_rpn(), roi_stage=_stage(("p2",)))
    with pytest.raises(ValueError, match=r"RoIStage.in_features names \['p2'\]"):
        _abstract(bad_roi, x, train=False)
    with pytest.raises(ValueError, match="one tuple per feature level"):
        _abstract(FasterRCNN(backbone=TinyBackbone(), rpn=_rpn(("stage2", "stage3")),
                             roi_stage=_stage()), x, train=False)
