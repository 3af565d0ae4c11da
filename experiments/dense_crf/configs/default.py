r"""Dense CRF (Krähenbühl & Koltun 2011) on DeepLab v3 (Chen et al. 2017; the network and recipe
of the segmentation experiment), on the built-in shapes semantic masks (64x64, 7 classes): as
post-processing with sigmas and weight chosen on a validation split, and trained end to end
as CRF-as-RNN (Zheng et al. 2015) against the network fine-tuned for the same steps without
it.

  python experiments/dense_crf/main.py --workdir W --config experiments/dense_crf/configs/default.py

Expected (128 test images; 2-core CPU shared with other jobs, load average 6.3-7.3,
2026-12-03: 646 s wall, 408 s process CPU)::

  | variant                     | mIoU  | trimap acc. 1 px | boundary F | CRF ms/image |
  | network                     | 0.426 | 0.546            | 0.767      |   -          |
  | + dense CRF (post, exact)   | 0.529 | 0.806            | 0.968      | 230          |
  | + dense CRF (post, grid)    | 0.529 | 0.807            | 0.971      | 157          |
  | fine-tuned + CRF (post)     | 0.540 | 0.810            | 0.964      | 230          |
  | CRF-as-RNN (end to end)     | 0.533 | 0.813            | 0.978      | 230          |

``:runlocal`` — an untrained FCN-8s, 32x32, a 2-setting search, 2 CRF-as-RNN steps, no
control, tiny widths: a smoke test.
"""
import ml_collections

from experiments.segmentation.configs import default as segmentation


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "runlocal"):
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    # The segmentation experiment's data, networks and recipe (backbone, fcn, deeplab, steps,
    # batch, optimiser, class weights); only the models and the CRF fields below are new.
    c = segmentation.get_config(arg or None)
    c.models = ("deeplab",)         # any of experiments.segmentation.train.MODELS
    c.num_val_examples = 64         # the CRF parameters are chosen on these (validation split)
    c.num_test_examples = 128
    # Mean-field settings shared by post-processing and CRF-as-RNN; the smoothness kernel is
    # fixed (w_s = 3, sigma_gamma = 3 px as in DeepLab) and the appearance kernel is searched.
    # compare_grid: the chosen CRF also with the bilateral-grid filter (a row of the table;
    # the search uses `method`, whose memory does not grow as the sigmas shrink).
    c.crf = ml_collections.ConfigDict(dict(iterations=5, spatial_sigma=3.0, spatial_weight=3.0,
                                           method="exact", batch_size=8, compare_grid=True))
    # Coordinate search for the best validation mIoU: from `start`, each field of `order` in
    # turn over its values (the others held at the best so far). sigma_alpha in pixels,
    # sigma_beta in intensity units of 0..255, w_b the appearance kernel's weight.
    c.search = ml_collections.ConfigDict(dict(
        start=dict(bilateral_weight=5.0, position_sigma=8.0, colour_sigma=10.0),
        order=("colour_sigma", "position_sigma", "bilateral_weight"),
        colour_sigma=(5.0, 10.0, 20.0, 40.0, 80.0), position_sigma=(4.0, 8.0, 16.0, 32.0),
        bilateral_weight=(2.5, 5.0, 10.0, 20.0)))
    # CRF-as-RNN: DenseCRF (the searched sigmas; learnable weights, starting at the searched
    # ones, and compatibility, starting at Potts) after the trained network, both fine-tuned
    # for `steps` (the CRF's updates scaled by crf_update_scale); the control fine-tunes the
    # network alone with the same steps, batch and learning rate.
    c.finetune = ml_collections.ConfigDict(dict(models=("deeplab",), steps=50, lr=3e-4,
                                                warmup_steps=5, batch_size=8,
                                                crf_update_scale=30.0,
                                                learn_compatibility=True, control=True))
    c.trimap_widths = (1, 2, 4, 8)  # trimap band half-widths (pixels)
    c.boundary_tolerance = 1        # boundary F-score tolerance (pixels)
    c.timing_repeats = 3
    c.num_figure_examples = 5
    if arg == "runlocal":
        c.models = ("fcn8s",)
        c.num_steps = 0             # the network untrained (its training is tested elsewhere)
        c.num_val_examples = 8
        c.num_test_examples = 16
        c.eval_batch_size = 8       # one batch shape for the network and the CRF
        c.crf.iterations = 2
        c.search.start.colour_sigma = 20.0
        c.search.colour_sigma = (20.0, 40.0)  # a small bilateral grid (compare_grid)
        c.search.position_sigma = (8.0,)
        c.search.bilateral_weight = (5.0,)
        c.finetune.models = ("fcn8s",)
        c.finetune.control = False
        c.finetune.steps = 2
        c.finetune.batch_size = 8
        c.finetune.warmup_steps = 1
        c.trimap_widths = (1, 2)
        c.timing_repeats = 1
        c.num_figure_examples = 2
    return c
