r"""Per-frame CNN vs conditional neural fields on shape clips: a linear-chain CRF over the CNN
trained end to end by maximum likelihood (Peng, Bo & Xu 2009), a latent-dynamic CRF with two
hidden states per part (Morency, Quattoni & Darrell 2007), a hidden CRF classifying the clip's
gesture (Quattoni et al. 2007) and an order-free bag-of-frames gesture classifier.

  python experiments/sequences/main.py --workdir W --config experiments/sequences/configs/default.py

Expected (500 test clips; 2-core CPU shared with other jobs, load 4-8, 2026-12-03: 11 min 37 s
wall): frame accuracy per-frame 76.0%, CRF max-marginal 77.6% (degraded frames 62.0% -> 69.1%,
clean frames 90.2% -> 86.2%), LDCRF 77.6%; gesture accuracy: known chains on the per-frame
labels 78.8%, hidden CRF 74.6%, bag of frames 49.6%. ``:runlocal`` is a seconds-long smoke
test.
"""
import ml_collections

NUM_PARTS = 6      # shape classes: the per-frame labels
NUM_GESTURES = 4   # the per-clip labels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # ShapesSequences(**c.data, split=..., num_examples=..., seed=c.seed).
    c.data = ml_collections.ConfigDict(dict(num_frames=12, image_size=24, occlusion_prob=0.3,
                                            noise_prob=0.3))
    c.num_train = 2000             # clips
    c.num_test = 500
    # vai_jax.create_model(**c.backbone, num_classes=0): a ResNet-8 (one basic unit per stage,
    # widths 8-16-32) on each frame.
    c.backbone = ml_collections.ConfigDict(dict(name="resnet20_cifar", stage_sizes=(1, 1, 1),
                                                widths=(8, 16, 32), stem_width=8))
    c.models = ("per_frame", "crf", "ldcrf", "hcrf", "bag_of_frames")  # trained, table order
    # Per model: the objective and ConditionalNeuralField(backbone, **field).
    field = lambda **kw: dict(in_feature="stage3", **kw)
    c.model = ml_collections.ConfigDict(dict(
        per_frame=dict(objective="frame_softmax", field=field(num_states=NUM_PARTS)),
        crf=dict(objective="chain_crf", field=field(num_states=NUM_PARTS)),
        # Two hidden states per part: state s carries part s mod 6.
        ldcrf=dict(objective="latent_dynamic_crf", field=field(
            num_states=2 * NUM_PARTS, state_to_label=tuple(range(NUM_PARTS)) * 2)),
        # Six hidden states per gesture: state s belongs to gesture s // 6.
        hcrf=dict(objective="hidden_crf", field=field(
            num_states=NUM_PARTS * NUM_GESTURES,
            state_to_label=tuple(g for g in range(NUM_GESTURES) for _ in range(NUM_PARTS)))),
        bag_of_frames=dict(objective="bag_of_frames", field=field(num_states=NUM_GESTURES))))
    # The shared start: c.model[model] trained on single frames (per-frame softmax); 0 = none.
    c.pretrain = ml_collections.ConfigDict(dict(model="per_frame", num_steps=500, batch_size=64,
                                                base_lr=3e-3))
    c.batch_size = 16              # clips
    c.num_steps = 200
    c.schedule = ml_collections.ConfigDict(dict(kind="cosine", base_lr=3e-3, warmup_steps=20))
    c.optimizer = ml_collections.ConfigDict(dict(name="adamw", weight_decay=1e-4))
    c.crf_lr_multiplier = 10.0     # the CRF's transitions and initial scores
    # Hidden states start as copies of the pretrained part scores (state s: part s mod 6)
    # plus this times a fresh initialisation.
    c.state_init_noise = 0.1
    c.eval_batch_size = 50
    c.log_every = 50
    c.num_figure_clips = 4
    c.progress = True
    if arg == "runlocal":
        c.data.update(dict(num_frames=6, image_size=16))
        c.num_train, c.num_test = 64, 16
        c.backbone.update(dict(stage_sizes=(1,), widths=(4,), stem_width=4))
        for m in c.model.values():
            m.field.in_feature = "stage1"
        c.pretrain.update(dict(num_steps=2, batch_size=16))
        c.batch_size = 8
        c.num_steps = 3
        c.schedule.warmup_steps = 1
        c.eval_batch_size = 8
        c.log_every = 2
        c.num_figure_clips = 2
        c.progress = False
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    return c
