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
    cls = classifier_shapes.get_config("runlocal")
    cls.model.name = "resnet20_cifar"
    cls.num_steps, cls.eval_every, cls.checkpoint_every, cls.progress = 4, 4, 4, False
    summary = train_classifier.train_and_evaluate(cls, str(tmp_path / "classifier"))
    assert summary["steps"] == 4

    cfg = inspect_classifier.get_config("runlocal")
    assert cfg.model.name == "resnet32_cifar"  # the classifier experiment's model
    cfg.model.name = "resnet20_cifar"
    cfg.checkpoint_dir = str(tmp_path / "classifier")
    cfg.image_size = cls.image_size
    cfg.layers = ("stage1", "stage3")
    cfg.quant.bits = (4, 2)
    cfg.prune.ratios = (0.5,)
    cfg.prune.methods = ("nonzero",)  # activation statistics after the branch ReLU
    work = tmp_path / "inspect"
    out = inspection.run(cfg, str(work))

    assert "restored from" in (work / "report.md").read_text()
    for name in ("filters.png", "activation_max.png", "probe.png", "pruning.png",
                 "evidence.png"):
        assert (work / name).read_bytes()[:8] == PNG, name
    saved = json.loads((work / "results.json").read_text())
    # ResNet-20 (He et al. 2016, option A shortcuts), 6 classes: 3x3 convs without bias, BN
    # scale + bias per channel, fc 64 -> 6.
    convs = [(3, 16)] + [(16, 16)] * 6 + [(16, 32)] + [(32, 32)] * 5 + [(32, 64)] + [(64, 64)] * 5
    expected = sum(9 * a * b + 2 * b for a, b in convs) + 64 * 6 + 6
    assert saved["params"] == out["params"] == expected
    # Receptive fields grow with depth (3x3 stem, then 3 stages of 3 basic units).
    # Receptive fields of the stages: 3x3 stem, 3 basic units (6 convs) at stride 1, then
    # stage 2's 6 convs (the first with stride 2) and stage 3's: 1 + 2*(1 + 6) = 15 for stage1.
    assert out["receptive_fields"]["stage1"] == 15
    assert out["receptive_fields"]["stage3"] > out["receptive_fields"]["stage1"]
    # Pruning half of every unit's inner channels: 9 units of (16, 32, 64) -> half of 336.
    assert [p["method"] for p in out["pruning"]] == ["nonzero"]
    for p in out["pruning"]:
        assert p["widths"] == "168 inner ch."
        assert p["params"] < out["params"] and p["macs"] < out["macs"]
        assert 0.0 <= p["accuracy_pruned"] <= 1.0 and 0.0 <= p["accuracy_finetuned"] <= 1.0
    # Fewer bits, fewer bytes.
    sizes = [q["bytes"] for q in out["quantisation"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] < out["float32_bytes"]
    probes = out["probe"]
    assert set(probes) == {"trained", "random init"}
