r"""What a classifier's embeddings encode (the "manifold" view of deep features): class,
rotation and scale of the built-in shapes decoded linearly (softmax probe, Alain & Bengio 2016;
ridge regression) and by nearest neighbours from the raw pixels and from each stage of a
ResNet-8 trained here and at its random initialisation, with 2-D PCA projections.

  python experiments/embeddings/main.py --workdir W --config experiments/embeddings/configs/default.py

Expected: classifier test top-1 94.1%; last stage (trained) class probe 94.6%, 10-NN class
agreement 94.9%, rotation R² 0.33 (median error 9.3°), log-scale R² 0.77; raw pixels and the
random network near chance (pixels: 16.5%, 21.0%, R² -0.02, -0.02). 2 min 43 s wall on the
2-core CPU (no GPU) shared at load average 4-6 (2026-12-03). ``:runlocal`` is a seconds-long
smoke test.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = ml_collections.ConfigDict(dict(image_size=32))  # ShapesDataset("classification", **)
    c.num_train = 4000            # also the decoders' training set
    c.num_test = 1000
    # vai_jax.create_model(**c.backbone, num_classes=6): a ResNet-8 (one basic unit per stage).
    c.backbone = ml_collections.ConfigDict(dict(name="resnet20_cifar", stage_sizes=(1, 1, 1),
                                                widths=(16, 32, 64), stem_width=16))
    c.batch_size = 64
    c.num_steps = 500
    c.schedule = ml_collections.ConfigDict(dict(kind="cosine", base_lr=3e-3, warmup_steps=20))
    c.optimizer = ml_collections.ConfigDict(dict(name="adamw", weight_decay=1e-4))
    c.stages = ("stem", "stage1", "stage2", "stage3")  # the backbone's features
    c.target_dim = 1              # extract_features pooling: 1 = global average pooling
    c.random_network = True       # also the untrained network (same initialisation)
    c.probe = ml_collections.ConfigDict(dict(steps=300, learning_rate=1e-2, weight_decay=1e-4))
    c.ridge = ml_collections.ConfigDict(dict(l2s=(1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4),
                                             val_fraction=0.2))  # embeddings.ridge_decode(**)
    c.knn_k = 10
    c.pca_class = "square"        # the class whose images are coloured by rotation and scale
    c.pca_representations = ("pixels", "trained stage1", "trained stage3", "random stage3")
    # t-SNE maps of the same sets (embeddings_tsne.png) at this perplexity, e.g. 30; 0: none
    # (scikit-learn's t-SNE of the 3,072-dim pixels takes minutes on a 2-core CPU).
    c.tsne_perplexity = 0.0
    c.eval_batch_size = 250
    c.log_every = 50
    c.progress = True
    if arg == "runlocal":
        c.data.image_size = 16
        c.num_train, c.num_test = 128, 64
        c.backbone.widths = (4, 8, 8)
        c.backbone.stem_width = 4
        c.batch_size = 16
        c.num_steps = 3
        c.schedule.warmup_steps = 1
        c.stages = ("stem", "stage3")
        c.probe.steps = 10
        c.ridge.l2s = (1.0, 10.0)
        c.knn_k = 3
        c.pca_representations = ("pixels", "trained stage3")
        c.tsne_perplexity = 5.0
        c.eval_batch_size = 64
        c.progress = False
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    return c
