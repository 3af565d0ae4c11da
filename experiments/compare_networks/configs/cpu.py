r"""The nine backbones of ``default.py`` sized for a CPU: 96x96 (the smallest size every one
accepts: Inception v3 needs 75x75), batch 8, 2 warm-up and 3 timed calls.

  python experiments/compare_networks/main.py --workdir workdir/compare_networks_cpu \
      --config experiments/compare_networks/configs/cpu.py

Expected on the 2-core CPU (no GPU), shared with other jobs (load average 13-18): inference
231 images/s (shufflenet_v1) down to 3.8 (vgg16), training steps 14.6 (squeezenet1_0) down to
1.1 images/s (vgg16); about 18 minutes for the nine models, mostly compilation.
"""
import ml_collections

from experiments.compare_networks.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg)
    c.image_size = 96
    c.batch_size = 8
    c.num_steps = 3
    return c
