"""experiments/inspection end to end on a network trained by experiments/classifier (a CIFAR
ResNet restored from its orbax checkpoint): every section is produced, pruning shrinks the
residual units, quantisation shrinks the bytes."""
import json

from experiments.classifier import train as train_classifier
from experiments.classifier.configs import default as classifier_shapes
from experiments.inspection import run as inspection
from experiments.inspection.configs import classifier as inspect_classifier

PNG = b"\x89PNG\r\n\x1a\n"


def test_inspect_classifier_checkpoint(tmp_path):
    # A CIFAR ResNet-8 (resnet20_cifar's layout with one basic unit per stage: an identity unit,
    # then two stride-2 units with option A shortcuts), trained two steps, one image per
    # simulated device: on XLA:CPU at optimisation level 0 compiling and executing the gradient
    # of the network is what the test costs.
    cls = classifier_shapes.get_config("runlocal")
    cls.model.name = "resnet20_cifar"
    cls.model.stage_sizes = (1, 1, 1)
    cls.batch_size, cls.num_train_examples, cls.num_test_examples = 8, 16, 8
    cls.num_steps, cls.eval_every, cls.checkpoint_every, cls.progress = 2, 2, 2, False
    cls.schedule.warmup_steps = 1
    summary = train_classifier.train_and_evaluate(cls, str(tmp_path / "classifier"))
    assert summary["steps"] == 2

    cfg = inspect_classifier.get_config("runlocal")
    assert cfg.model.name == "resnet32_cifar"  # the classifier experiment's model
    cfg.model = cls.model
    cfg.checkpoint_dir = str(tmp_path / "classifier")
    cfg.image_size = cls.image_size
    cfg.layers = ("stage1", "stage3")
    cfg.quant.bits = (4, 2)
    cfg.prune.ratios = (0.5,)
    cfg.prune.methods = ("nonzero",)  # activation statistics after the branch ReLU
    # Every section at the smallest sizes that still run its code: four ascent steps (one of
    # them blurs: blur_every=4), two fine-tuning steps of 8 images, 32 training and 16 test
    # images.
    cfg.num_train, cfg.num_test, cfg.probe.num_train = 32, 16, 32
    cfg.actmax.steps, cfg.train.batch_size, cfg.prune.finetune_steps = 4, 8, 2
    work = tmp_path / "inspect"
    out = inspection.run(cfg, str(work))

    assert "restored from" in (work / "report.md").read_text()
    for name in ("filters.png", "activation_max.png", "probe.png", "pruning.png",
                 "evidence.png"):
        assert (work / name).read_bytes()[:8] == PNG, name
    saved = json.loads((work / "results.json").read_text())
    # ResNet-8 (He et al. 2016, option A shortcuts), 6 classes: 3x3 convs without bias, BN
    # scale + bias per channel, fc 64 -> 6.
    convs = [(3, 16), (16, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    expected = sum(9 * a * b + 2 * b for a, b in convs) + 64 * 6 + 6
    assert saved["params"] == out["params"] == expected
    # Receptive fields grow with depth (3x3 stem, then 3 stages of one basic unit): the stem
    # and stage 1's 2 convs at stride 1 give 1 + 2*(1 + 2) = 7 for stage1.
    assert out["receptive_fields"]["stage1"] == 7
    assert out["receptive_fields"]["stage3"] > out["receptive_fields"]["stage1"]
    # Pruning half of every unit's inner channels: 3 units of 16, 32, 64 -> half of 112.
    assert [p["method"] for p in out["pruning"]] == ["nonzero"]
    for p in out["pruning"]:
        assert p["widths"] == "56 inner ch."
        assert p["params"] < out["params"] and p["macs"] < out["macs"]
        assert 0.0 <= p["accuracy_pruned"] <= 1.0 and 0.0 <= p["accuracy_finetuned"] <= 1.0
    # Fewer bits, fewer bytes.
    sizes = [q["bytes"] for q in out["quantisation"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] < out["float32_bytes"]
    probes = out["probe"]
    assert set(probes) == {"trained", "random init"}
