"""Channel shuffle (ShuffleNet, Zhang et al. 2018): lets information cross the groups of
consecutive grouped convolutions."""
from __future__ import annotations

import flax.linen as nn

from vai_jax._validation import check_array


def channel_shuffle(x, groups: int):
    """Interleave the ``groups`` channel groups of ``x``.

    Reshape the channels to ``(groups, C // groups)``, transpose, flatten: output channel
    ``k = i·groups + j`` is input channel ``j·(C // groups) + i`` (``0 <= j < groups``,
    ``0 <= i < C // groups``). ``channel_shuffle(channel_shuffle(x, g), C // g) == x``; when
    ``C == g²`` the shuffle is its own inverse.

    Args:
      x: ``[..., C]`` array (NHWC or any layout with channels last); any dtype.
      groups: number of groups, a divisor of ``C``.

    Returns:
      ``[..., C]``, a permutation of the channels.
    """
    x = check_array(x, "x", min_ndim=1, shape_hint="[..., C]")
    c = x.shape[-1]
    if not isinstance(groups, int) or groups < 1 or c % groups:
        raise ValueError(f"groups must be a positive divisor of the {c} channels of x; got {groups!r}")
    lead = x.shape[:-1]
    return x.reshape(*lead, groups, c // groups).swapaxes(-1, -2).reshape(*lead, c)


class ChannelShuffle(nn.Module):
    """Module form of :func:`channel_shuffle` (no parameters)."""

    groups: int

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        return channel_shuffle(x, self.groups)
