"""Exact parameter and multiply-accumulate counts of a Flax Linen model, layer by layer.

Convention (that of the papers' tables — GoogLeNet Table 1, ResNet Table 1 — and of
torchvision's "GFLOPS" column, which is really GMACs: ResNet-50 at 224 × 224 is 4.09 G):

* One multiply-accumulate (MAC) is one multiply and one add of a convolution or a matrix
  product. Only layers with weights are counted: ``nn.Conv`` (``out positions · C_out ·
  kh·kw·C_in/groups``, zero-padded taps included), ``nn.ConvLocal`` (one kernel per output
  position), ``nn.ConvTranspose`` (``in positions · kh·kw·C_in·C_out``), ``nn.Dense`` /
  ``nn.DenseGeneral`` (``out elements · contracted size``) and ``nn.Einsum`` (``out elements ·
  product of the contracted axes``).
* Not counted: bias adds, BatchNorm/LayerNorm, activations, pooling, resizing, residual
  additions, and matrix products that are not layers (the ``q·kᵀ`` and ``attention·v`` of
  attention). They are small next to the convolutions of a CNN.
* MACs are per example: the count for the whole ``input_shape`` batch divided by its leading
  axis. FLOPs in the "2 per MAC" convention are ``2 · macs``.
* Parameters are the ``params`` collection (conv/dense kernels and biases, BatchNorm scale and
  bias, ...). BatchNorm running statistics are state, not parameters, and are not counted.

Everything runs under :func:`jax.eval_shape`, so even VGG or ResNet-152 at 224 × 224 allocates
no parameter or activation memory. Parameters are those ``init`` creates; layer calls are
recorded (with ``flax.linen.intercept_methods``) while tracing ``apply`` with the same keyword
arguments, so a branch that only runs in training (auxiliary classifiers with ``train=False``)
contributes its parameters but no MACs.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One line of a :class:`Summary`.

    Attributes:
      name: module path joined by ``/``, e.g. ``"stage2/block1/conv1/conv"``; ``""`` for the
        top-level module's own parameters.
      kind: class name of the module (``"Conv"``, ``"Dense"``, ``"BatchNorm"``, ...).
      input_shape: shape of the first positional input of the first call (batch axis included),
        or ``None`` when the module was never called (parameters created in ``setup`` only) or
        the input is not a single array.
      output_shape: shape of the output of the first call, ``None`` when it is not one array.
      kernel_shape: shape of the module's ``kernel`` parameter, or ``None``.
      groups: ``feature_group_count`` of a convolution (1 otherwise).
      params: number of parameters the module owns directly (its sub-modules excluded).
      macs: multiply-accumulates per example, summed over every call of the module.
    """

    name: str
    kind: str
    input_shape: Shape | None
    output_shape: Shape | None
    kernel_shape: Shape | None
    groups: int
    params: int
    macs: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """Per-layer table with totals, as returned by :func:`summarize`.

    Attributes:
      rows: one :class:`LayerRow` per parameter-owning or multiply-accumulating module, in call
        order (or per group after :meth:`group_by`).
      params: total parameters; equals :func:`count_params` of the model's variables.
      macs: total multiply-accumulates per example; equals the sum of ``rows[i].macs``.
      input_shape: the input shape the model was traced with (batch axis included).
    """

    rows: tuple[LayerRow, ...]
    params: int
    macs: int
    input_shape: Shape
    _outputs: Mapping[str, tuple[str, Shape | None, Shape | None]] = dataclasses.field(
        default_factory=dict, repr=False, compare=False)

    def row(self, name: str) -> LayerRow:
        """The row called ``name`` (a module path); KeyError listing close names if absent."""
        for r in self.rows:
            if r.name == name:
                return r
        near = [r.name for r in self.rows if name.split("/")[-1] in r.name][:10]
        raise KeyError(f"no row named {name!r}; rows with a similar name: {near}")

    def group_by(self, depth: int) -> "Summary":
        """Aggregate rows by the first ``depth`` components of their path.

        ``group_by(1)`` of a backbone gives one row per stage (``stem``, ``stage1``, ...) or per
        top-level block (``inception3a``, ...). A group row's ``kind``, ``input_shape`` and
        ``output_shape`` are those of the module at the group path (when it was called);
        ``kernel_shape`` is ``None``; ``params`` and ``macs`` are sums. Rows already shallower
        than ``depth`` stay as they are. Totals are unchanged.
        """
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1; got {depth!r}")
        order: list[str] = []
        sums: dict[str, list[int]] = {}
        single: dict[str, LayerRow] = {}
        for r in self.rows:
            key = "/".join(r.name.split("/")[:depth]) if r.name else ""
            if key not in sums:
                order.append(key)
                sums[key] = [0, 0]
                single[key] = r
            sums[key][0] += r.params
            sums[key][1] += r.macs
        rows = []
        for key in order:
            first = single[key]
            if first.name == key:
                rows.append(dataclasses.replace(first, params=sums[key][0], macs=sums[key][1]))
                continue
            kind, in_shape, out_shape = self._outputs.get(key, ("", None, None))
            rows.append(LayerRow(key, kind, in_shape, out_shape, None, 1, *sums[key]))
        return dataclasses.replace(self, rows=tuple(rows))

    # ---- rendering -------------------------------------------------------------------------

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = ["Layer", "Kind", "Output shape", "Kernel", "Params", "MACs"]
        body = [[r.name or "(top)", r.kind, _shape_str(r.output_shape),
                 _shape_str(r.kernel_shape) + (f" g={r.groups}" if r.groups != 1 else ""),
                 f"{r.params:,}", f"{r.macs:,}"] for r in self.rows]
        return header, body

    def _totals(self) -> str:
        return (f"Total params: {self.params:,} ({human(self.params)}); "
                f"total MACs per example: {self.macs:,} ({human(self.macs)}MACs) "
                f"at input {tuple(self.input_shape)}")

    def to_text(self) -> str:
        """Fixed-width plain-text table followed by the totals."""
        header, body = self._table()
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
                  for i, h in enumerate(header)]
        right = {4, 5}

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(header))
        return "\n".join([line(header), rule, *(line(b) for b in body), rule, self._totals()])

    def to_markdown(self) -> str:
        """GitHub-flavoured markdown table followed by the totals."""
        header, body = self._table()
        esc = lambda c: c.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---", "---", "---", "---", "---:", "---:"]) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in b) + " |" for b in body]
        lines += ["", f"**{self._totals()}**"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def human(n: float, *, digits: int = 2) -> str:
    """``n`` with an SI suffix: ``human(4_089_184_256) == "4.09 G"``, ``human(960) == "960 "``."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.{digits}f} {suffix}"
    return f"{n:g} "


def _shape_str(shape) -> str:
    return "-" if shape is None else "x".join(str(d) for d in shape)


def count_params(variables_or_params: Any) -> int:
    """Number of parameters (array elements) in a params pytree.

    Args:
      variables_or_params: a Flax variables dict (a mapping with a ``"params"`` key: only that
        collection is counted, so ``batch_stats`` are not) or a params pytree. Leaves may be
        arrays or ``jax.ShapeDtypeStruct`` (the output of ``jax.eval_shape``).

    Returns:
      The total number of elements, a Python int.
    """
    tree = variables_or_params
    if isinstance(tree, Mapping) and "params" in tree:
        tree = tree["params"]
    leaves = jax.tree.leaves(tree)
    for leaf in leaves:
        if not hasattr(leaf, "shape"):
            raise TypeError(f"variables_or_params must hold arrays; got a leaf of type "
                            f"{type(leaf).__name__}")
    return sum(math.prod(leaf.shape) for leaf in leaves)


@dataclasses.dataclass
class _Call:
    path: tuple[str, ...]
    module: nn.Module
    in_shape: Shape | None
    out_shape: Shape | None
    kernel_shape: Shape | None
    macs_batch: int  # for the whole batch


def _single_shape(tree) -> Shape | None:
    leaves = jax.tree.leaves(tree)
    if len(leaves) == 1 and hasattr(leaves[0], "shape"):
        return tuple(int(d) for d in leaves[0].shape)
    return None


def _einsum_macs(spec: str, in_shapes: Sequence[Shape], out_shape: Shape) -> int:
    """``prod(out) · prod(contracted axes)`` for ``spec`` like ``"bsd,dhk->bshk"``."""
    lhs, _, rhs = spec.replace(" ", "").partition("->")
    sizes: dict[str, int] = {}
    for term, shape in zip(lhs.split(","), in_shapes):
        if "..." in term:
            head, _, tail = term.partition("...")
            pairs = list(zip(head, shape)) + (list(zip(tail, shape[len(shape) - len(tail):]))
                                               if tail else [])
        else:
            pairs = list(zip(term, shape))
        sizes.update({c: int(d) for c, d in pairs})
    contracted = [c for c in sizes if c not in rhs]
    return math.prod(out_shape) * math.prod(sizes[c] for c in contracted)


def _macs(module: nn.Module, args, kwargs, in_shape, out_shape, kernel_shape) -> int:
    """Multiply-accumulates of one call, for the whole batch (0 for modules without any)."""
    if kernel_shape is None or out_shape is None:
        return 0
    kernel_size = math.prod(kernel_shape)
    if isinstance(module, nn.ConvTranspose):
        return math.prod(in_shape[:-1]) * kernel_size
    if isinstance(module, (nn.Conv, nn.ConvLocal)):
        n_spatial = len(kernel_shape) - 2
        if isinstance(module, nn.ConvLocal):  # kernel already has one copy per output position
            return math.prod(out_shape[:-n_spatial - 1]) * kernel_size
        return math.prod(out_shape[:-1]) * kernel_size
    if isinstance(module, nn.Dense):
        return math.prod(out_shape[:-1]) * kernel_size
    if isinstance(module, nn.DenseGeneral):
        features = module.features if isinstance(module.features, Sequence) else (module.features,)
        batch_dims = module.batch_dims if isinstance(module.batch_dims, Sequence) else (
            module.batch_dims,)
        batch = math.prod(in_shape[a] for a in batch_dims)
        contracted = kernel_size // (math.prod(features) * batch)
        return math.prod(out_shape) * contracted
    if isinstance(module, nn.Einsum):
        spec = kwargs.get("einsum_str") or (args[1] if len(args) > 1 else None) or module.einsum_str
        return _einsum_macs(spec, [in_shape, kernel_shape], out_shape)
    return 0


def summarize(model: nn.Module, input_shape: Sequence[int], *, input_dtype=jnp.float32,
              **call_kwargs) -> Summary:
    """Count parameters and multiply-accumulates of ``model`` layer by layer.

    Args:
      model: an unbound Flax Linen module.
      input_shape: shape of the input, leading batch axis included, e.g. ``(1, 224, 224, 3)``
        for NHWC images. MACs are reported per example (divided by ``input_shape[0]``).
      input_dtype: dtype of the (never materialised) input.
      **call_kwargs: passed to the model's ``__call__``, e.g. ``train=False``.

    Returns:
      A :class:`Summary`: one row per module that owns parameters or does multiply-accumulates
      (see the module docstring for the convention), ``.params`` and ``.macs`` totals.

    Raises:
      ValueError: ``input_shape`` is not a non-empty sequence of positive ints.
    """
    if (not isinstance(input_shape, Sequence) or not input_shape
            or not all(isinstance(d, (int, np.integer)) and d > 0 for d in input_shape)):
        raise ValueError(f"input_shape must be a non-empty sequence of positive ints with the "
                         f"batch axis first, e.g. (1, 224, 224, 3); got {input_shape!r}")
    input_shape = tuple(int(d) for d in input_shape)
    calls: list[_Call] = []
    outputs: dict[str, tuple[str, Shape | None, Shape | None]] = {}
    init_order: dict[tuple[str, ...], tuple[int, str]] = {}

    def record_init(next_fun, args, kwargs, context):
        path = tuple(context.module.path)
        init_order.setdefault(path, (len(init_order), type(context.module).__name__))
        return next_fun(*args, **kwargs)

    def record_apply(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name != "__call__":
            return out
        module = context.module
        path = tuple(module.path)
        first = args[0] if args else next(iter(kwargs.values()), None)
        in_shape = _single_shape(first)
        out_shape = _single_shape(out)
        outputs.setdefault("/".join(path), (type(module).__name__, in_shape, out_shape))
        kernel = nn.meta.unbox(module.variables.get("params", {}).get("kernel"))
        kernel_shape = tuple(int(d) for d in kernel.shape) if hasattr(kernel, "shape") else None
        macs = _macs(module, args, kwargs, in_shape, out_shape, kernel_shape)
        calls.append(_Call(path, module, in_shape, out_shape, kernel_shape, macs))
        return out

    key = jax.random.key(0)
    rngs = {"params": key, "dropout": key}

    def init(x):
        with nn.intercept_methods(record_init):
            return model.init(rngs, x, **call_kwargs)

    def apply(variables, x):
        with nn.intercept_methods(record_apply):
            return model.apply(variables, x, rngs=rngs, mutable=True, **call_kwargs)

    # Parameters come from ``init``; the counted calls from ``apply``, so that branches built
    # only at initialisation (e.g. auxiliary classifiers with ``train=False``) add no MACs.
    x = jax.ShapeDtypeStruct(input_shape, input_dtype)
    variables = jax.eval_shape(init, x)
    jax.eval_shape(apply, variables, x)
    params = variables.get("params", {})

    # Parameters owned directly by each module path (leaf key = parameter name).
    owned: dict[tuple[str, ...], int] = {}
    for name, leaf in traverse_util.flatten_dict(nn.meta.unbox(dict(params))).items():
        owned[name[:-1]] = owned.get(name[:-1], 0) + math.prod(leaf.shape)

    batch = input_shape[0]
    rows: list[LayerRow] = []
    index: dict[tuple[str, ...], int] = {}
    for c in calls:
        if c.path in index:  # a shared module called again: add its MACs to its row
            i = index[c.path]
            rows[i] = dataclasses.replace(rows[i], macs=rows[i].macs + c.macs_batch // batch)
            continue
        if c.path not in owned and c.macs_batch == 0:
            continue
        index[c.path] = len(rows)
        rows.append(LayerRow("/".join(c.path), type(c.module).__name__, c.in_shape, c.out_shape,
                             c.kernel_shape, int(getattr(c.module, "feature_group_count", 1)),
                             owned.get(c.path, 0), c.macs_batch // batch))
    # Parameter owners not called by ``apply`` (built only at init, or declared in setup).
    for path, n in owned.items():
        if path not in index:
            index[path] = len(rows)
            kind = init_order.get(path, (0, "params"))[1]
            rows.append(LayerRow("/".join(path), kind, None, None, None, 1, n, 0))
    for path, (_, kind) in init_order.items():  # kinds of groups never called by apply
        outputs.setdefault("/".join(path), (kind, None, None))
    rows.sort(key=lambda r: init_order.get(tuple(r.name.split("/")) if r.name else (),
                                           (len(init_order),))[0])
    return Summary(rows=tuple(rows), params=count_params(params),
                   macs=sum(r.macs for r in rows), input_shape=input_shape, _outputs=outputs)
