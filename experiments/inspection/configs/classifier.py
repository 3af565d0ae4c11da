r"""Look inside the classifier experiment's network: its CIFAR ResNet-32 (He et al. 2016)
checkpoint, trained on the built-in 32x32 shapes; pruning removes channels of the inner
convolution of every residual unit.

  python experiments/classifier/main.py --workdir workdir/classifier
  python experiments/inspection/main.py --workdir workdir/inspection_resnet32 \
      --config experiments/inspection/configs/classifier.py

Expected: ResNet-32 (463,894 parameters, 68.9 M MACs) at test top-1 99.7%; linear-probe
accuracy 37.2% (stem) to 99.7% (stage3); pruning half of the inner channels keeps 97.8% after
100 fine-tuning steps; 6 min 53 s on the idle 2-core CPU (no GPU) once the checkpoint exists.
``:runlocal`` takes the default's smoke-test sizes.
"""
import ml_collections

from experiments.classifier.configs import default as classifier_default
from experiments.inspection.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg)
    c.model = ml_collections.ConfigDict(classifier_default.get_config().model.to_dict())
    c.checkpoint_dir = "workdir/classifier"  # the classifier experiment's README workdir
    return c
