"""The perturbation engine: many perturbed copies per forward pass, folded into a result.

Every perturbation method (ablation, occlusion, permutation, Shapley sampling, LIME, Kernel
SHAP, their Layer/Neuron variants) is a :class:`Plan` run by :func:`sweep`:

1. the unperturbed values of the *site* (the inputs, or a layer's values) are evaluated once;
2. the plan's ``total`` perturbations are cut into chunks of ``perturbations_per_eval``
   (the one chunking loop, :func:`perspicio._core.chunks.chunks`); for each chunk the plan
   stacks the perturbed copies into one batch (``plan.perturb``), the batch goes through one
   forward pass under ``torch.no_grad()``, and the outputs, one row of ``n_out`` values per
   perturbation, are folded into the plan's state (``plan.fold``);
3. the algorithm reads its result from the plan.

What a forward pass means is the ``evaluate`` function: it maps a batch of ``k`` stacked
perturbed site values (``k * N`` rows, perturbation-major: ``[p0 x0, p0 x1, p1 x0, ...]``)
to the objective for those rows. :func:`model_evaluator` runs the model on perturbed inputs
and selects the target; :func:`layer_evaluator` runs the model on the (repeated) inputs while
a layer's output (or input) is replaced by the perturbed values, which is all a Layer variant
needs. A Neuron variant passes an ``evaluate`` that reads a neuron instead of the target.

``perturbations_per_eval`` keeps Captum's meaning (at most that many perturbations per
forward pass). Its default, :data:`AUTO` (the int 1, told apart by identity), or ``None``
sizes chunks from a memory budget instead: the bytes of the site values and of the leaf
modules' outputs measured during the unperturbed evaluation, against :func:`memory_budget`
(and, on the CPU, against a cache-sized budget for cheap rows: :data:`CPU_CACHE_BYTES`).
Results never depend on the chunk size. A forward function that returns one value for the
whole batch (its output does not have the batch size as first dimension) gets one
perturbation per evaluation; if a batched output turns out not to grow with the batch, the
chunk is re-evaluated one perturbation at a time.

``attribute_future`` runs the same plans with :func:`sweep_future`: ``evaluate`` returns
``torch.futures.Future`` objects, every chunk is launched before any is awaited, and the
folds run in order once all have arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from perspicio._core.call import Call, Tensors, batch_size_of
from perspicio._core.chunks import check_chunk_size, chunks
from perspicio._core.forward import forward_call, run_forward
from perspicio._core.hooks import handles, replace
from perspicio._core.sites import LayerSite
from perspicio._core.target import Target
from perspicio._core.validate import ArgumentError
from perspicio.perturbation.progress import progress

Evaluate = Callable[[Tensors, int], Any]
"""``(stacked site values with k * N rows, k) -> objective output`` (a tensor or a Future)."""

BUDGET_BYTES = 256 * 2**20
"""Memory a forward pass may use when ``perturbations_per_eval`` is left at its default."""

CPU_CACHE_BYTES, CPU_MIN_ROWS = 4 * 2**20, 256
"""On the CPU, automatic passes also stop at ``CPU_CACHE_BYTES`` of activations unless that
leaves fewer than ``CPU_MIN_ROWS`` rows: cheap rows (a tabular MLP) run fastest a few hundred
to a thousand at a time, from cache, while costly rows (images) need the larger passes of the
memory budget to keep both cores busy in small layers."""


class _Auto(int):
    """Captum's default of 1, recognisable by identity: ``perturbations_per_eval is AUTO``."""

    def __repr__(self) -> str:
        return "1"


AUTO: int = _Auto(1)


class Plan(Protocol):
    """What a perturbation method generates and how it folds the outputs.

    ``perturb`` must be a pure function of its range (draw random numbers up front), so that
    chunks of any size give the same perturbations.
    """

    @property
    def total(self) -> int:
        """The number of perturbations."""
        ...

    def perturb(self, start: int, stop: int) -> Tensors:
        """Perturbations ``start .. stop-1`` stacked: ``((stop - start) * N, ...)`` per site tensor."""
        ...

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        """Fold ``evals`` ``(stop - start, n_out)``; ``base`` ``(n_out,)`` is the unperturbed output."""
        ...


def is_auto(per_eval: Any) -> bool:
    return per_eval is AUTO or per_eval is None


def check_per_eval(per_eval: Any, name: str = "perturbations_per_eval") -> None:
    """``AUTO``/``None`` or a positive int; a clear error before any model call."""
    if not is_auto(per_eval):
        check_chunk_size(per_eval, name)


def memory_budget(device: torch.device) -> int:
    """Bytes one forward pass may use for automatic chunks (more on a roomy GPU)."""
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return max(BUDGET_BYTES, free // 8)
    return BUDGET_BYTES


def objective(output: Any, target: Target) -> Any:
    """The explained output: the target's scores, or the whole output when there is no target.

    Futures are passed through with the selection chained; Python numbers become tensors.
    """
    if isinstance(output, torch._C.Future):
        return output.then(lambda fut: objective(fut.value(), target))
    if isinstance(output, int | float) and not isinstance(output, bool):
        output = torch.tensor(output)
    if target.is_none or not isinstance(output, Tensor):
        return output
    return target.select(output)


def _repeated(call: Call, inputs: bool = True) -> Callable[[int], Call]:
    cache: dict[int, Call] = {1: call}

    def get(k: int) -> Call:
        if k not in cache:
            cache[k] = call.repeat(k, inputs=inputs)
        return cache[k]

    return get


def model_evaluator(forward_func: Callable[..., Any], call: Call) -> Evaluate:
    """Evaluate perturbed *inputs*: ``forward_func(*values, *args)``, then the target."""
    repeated = _repeated(call, inputs=False)  # the stacked inputs come with each chunk

    def evaluate(values: Tensors, k: int) -> Any:
        sub = repeated(k)
        return objective(run_forward(forward_func, values, sub.args), sub.target)

    return evaluate


def layer_evaluator(
    forward_func: Callable[..., Any],
    call: Call,
    layer: nn.Module | LayerSite,
    to_input: bool = False,
) -> Evaluate:
    """Evaluate perturbed values of a layer's output (or input, ``to_input=True``).

    The model runs on the call's inputs repeated ``k`` times while ``layer`` is made to
    return (or receive) the perturbed values; site values come from
    :meth:`perspicio._core.sites.LayerSite.values`. ``layer`` may be a bound
    :class:`~perspicio._core.sites.LayerSite` (``to_input`` is then the site's): only the
    last call of a reused layer is replaced, and DataParallel replicas get their rows.
    """
    repeated = _repeated(call)

    def evaluate(values: Tensors, k: int) -> Any:
        sub = repeated(k)
        swap: AbstractContextManager[Any]
        if isinstance(layer, LayerSite):
            swap = layer.replaced(values)
        else:
            swap = replace(layer, values, inputs=to_input)
        with swap:
            out = forward_call(forward_func, sub)
        return objective(out, sub.target)

    return evaluate


def perturbed(values: Tensors, selected: Sequence[Tensor], replacements: Sequence[Any]) -> Tensors:
    """Stack ``k`` perturbed copies: where ``selected``, the replacement; elsewhere the value.

    Args:
        values: site tensors ``(N, *S)``.
        selected: per tensor a ``(k, M, *S)`` bool mask (``M`` is 1 or N).
        replacements: per tensor anything broadcastable to ``(k, N, *S)``: a baseline
            ``(1 or N, *S)``, or per-perturbation values ``(k, N, *S)``.

    Returns:
        ``(k * N, *S)`` per tensor, perturbation-major. Integer inputs stay integer.
    """
    out = []
    for x, sel, rep in zip(values, selected, replacements):
        rep = torch.as_tensor(rep, device=x.device)
        if not x.is_floating_point():  # token ids must stay ids
            rep = rep.to(x.dtype)
        k = sel.shape[0]
        stacked = torch.where(sel, rep, x.unsqueeze(0))
        out.append(stacked.expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:]))
    return tuple(out)


def is_per_example(base: Tensor, batch_size: int) -> bool:
    """Whether the output has one group of rows per example (grows with the batch)."""
    return base.dim() > 0 and base.shape[0] == batch_size


def _as_output(out: Any) -> Tensor:
    if isinstance(out, torch._C.Future):
        raise TypeError(
            "forward_func returned a torch.futures.Future: call attribute_future instead"
        )
    if isinstance(out, int | float) and not isinstance(out, bool):
        out = torch.tensor(out)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"forward_func must return a tensor (or a number), got {type(out).__name__}; wrap "
            "models that return tuples, dicts or ModelOutput objects"
        )
    if not (out.is_floating_point() or out.is_complex()):
        out = out.to(torch.get_default_dtype())
    return out.detach()


def nbytes(value: Any) -> int:
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, tuple | list):
        return sum(nbytes(v) for v in value)
    return 0


@contextmanager
def _activation_meter() -> Iterator[list[int]]:
    """Sum the bytes of every leaf module's output during the block (a global hook, removed)."""
    total = [0]

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if next(module.children(), None) is None:
            total[0] += nbytes(output)

    with handles(torch.nn.modules.module.register_module_forward_hook(hook)):
        yield total


class _Schedule:
    """How many perturbations go in one forward pass, fixed after the unperturbed evaluation."""

    def __init__(self, per_eval: Any, cost: Callable[[Tensor], int] | None) -> None:
        check_per_eval(per_eval)
        self.auto = is_auto(per_eval)
        self.per_eval = per_eval
        self.cost = cost

    def meter(self) -> Any:
        return _activation_meter() if self.auto and self.cost is None else nullcontext([0])

    def step(self, values: Tensors, base: Tensor, n: int, total: int, activations: int) -> int:
        if not is_per_example(base, n):
            if not self.auto and self.per_eval > 1:
                raise ArgumentError(
                    f"perturbations_per_eval={self.per_eval} needs a forward_func whose output "
                    f"has one row per example, but it returned shape {tuple(base.shape)} for "
                    f"{n} examples (one value for the whole batch): use perturbations_per_eval=1"
                )
            return 1
        if not self.auto:
            return int(self.per_eval)
        need = max(1, self.cost(base) if self.cost is not None else nbytes(values) + activations)
        device = values[0].device if values else torch.device("cpu")
        step = memory_budget(device) // need
        if device.type == "cpu":  # cheap rows: a pass whose activations stay in cache
            rows = max(CPU_MIN_ROWS, CPU_CACHE_BYTES * n // need)
            step = min(step, rows // n)
        return max(1, min(total, step))


def _check_fits(out: Tensor, base: Tensor, k: int) -> bool:
    if out.numel() != k * base.numel():
        return False
    return k == 1 or (out.dim() > 0 and out.shape[0] == k * base.shape[0])


def _misfit(out: Tensor, base: Tensor, k: int) -> ValueError:
    if k == 1:
        return ValueError(
            f"forward_func returned shape {tuple(out.shape)} for a perturbed batch but "
            f"{tuple(base.shape)} for the unperturbed one: its output size must not change"
        )
    return ValueError(
        f"forward_func returned shape {tuple(out.shape)} for {k} stacked perturbation(s) of a "
        f"batch whose unperturbed output has shape {tuple(base.shape)}: with more than one "
        "perturbation per evaluation the output must grow with the batch (one row per "
        "example); use perturbations_per_eval=1 for models that aggregate the batch"
    )


def _run(
    evaluate: Evaluate, plan: Plan, base: Tensor, offset: int, step: int, strict: bool, bar: Any
) -> int:
    """Evaluate and fold perturbations ``offset ..``; the index of a misfit chunk, else total."""
    flat = base.reshape(-1)
    for lo, hi in chunks(plan.total - offset, step):
        start, stop = lo + offset, hi + offset
        k = stop - start
        out = _as_output(evaluate(plan.perturb(start, stop), k))
        if not _check_fits(out, base, k):
            if strict or k == 1:
                raise _misfit(out, base, k)
            return start
        plan.fold(start, stop, out.reshape(k, -1).to(flat.dtype), flat)
        bar.update(k)
    return plan.total


def sweep(
    evaluate: Evaluate,
    values: Tensors,
    plan: Plan,
    per_eval: int | None = AUTO,
    *,
    show_progress: bool = False,
    desc: str = "Perturbation attribution",
    cost: Callable[[Tensor], int] | None = None,
) -> Tensor:
    """Run ``plan`` against ``evaluate``; returns the unperturbed output (its own shape).

    Args:
        evaluate: maps stacked site values and ``k`` to the objective (see :data:`Evaluate`).
        values: the unperturbed site values, ``(N, ...)`` each.
        plan: the perturbations and the fold (see :class:`Plan`).
        per_eval: ``perturbations_per_eval``: a positive int, or ``AUTO``/``None``.
        show_progress: show a progress bar described by ``desc``.
        cost: with automatic chunks, the bytes one perturbation needs given the unperturbed
            output (default: measured from the site values and the model's activations).
    """
    schedule = _Schedule(per_eval, cost)
    n = batch_size_of(values)
    with torch.no_grad():
        with schedule.meter() as activations:
            base = _as_output(evaluate(values, 1))
        step = schedule.step(values, base, n, plan.total, activations[0])
        label = f"{desc}: {plan.total} perturbations x {n} examples, {step} per pass"
        with progress(label, plan.total + 1, show_progress) as bar:
            bar.update(1)
            done = _run(evaluate, plan, base, 0, step, not schedule.auto, bar)
            if done < plan.total:  # the model aggregates the batch after all
                _run(evaluate, plan, base, done, 1, True, bar)
    return base


def sweep_future(
    evaluate: Evaluate,
    values: Tensors,
    plan: Plan,
    per_eval: int | None = AUTO,
    *,
    show_progress: bool = False,
    desc: str = "Perturbation attribution",
    cost: Callable[[Tensor], int] | None = None,
) -> torch._C.Future[Tensor]:
    """:func:`sweep` for an ``evaluate`` returning futures; a Future of the unperturbed output.

    The unperturbed evaluation is awaited first (its shape decides the chunk size), then every
    chunk is launched, and the folds run in order when all outputs have arrived.
    """
    schedule = _Schedule(per_eval, cost)
    n = batch_size_of(values)
    with torch.no_grad():
        base = _as_output(_future(evaluate(values, 1)).wait())
        step = schedule.step(values, base, n, plan.total, 0)
        label = f"{desc}: {plan.total} perturbations x {n} examples, {step} per pass"
        launched = []
        with progress(label, plan.total + 1, show_progress) as bar:
            bar.update(1)
            for start, stop in chunks(plan.total, step):
                launched.append(
                    (start, stop, _future(evaluate(plan.perturb(start, stop), stop - start)))
                )
                bar.update(stop - start)

    def finish(_: Any) -> Tensor:
        flat = base.reshape(-1)
        with torch.no_grad():
            for start, stop, fut in launched:
                out, k = _as_output(fut.value()), stop - start
                if not _check_fits(out, base, k):
                    raise _misfit(out, base, k)
                plan.fold(start, stop, out.reshape(k, -1).to(flat.dtype), flat)
        return base

    futures: list[Any] = [f for _, _, f in launched]
    return torch.futures.collect_all(futures).then(finish)


def _future(value: Any) -> torch._C.Future[Any]:
    if not isinstance(value, torch._C.Future):
        raise TypeError(
            f"attribute_future needs a forward_func that returns a torch.futures.Future, got "
            f"{type(value).__name__}: call attribute instead"
        )
    return value


def execute(
    plan: Plan,
    evaluate: Evaluate,
    values: Tensors,
    finish: Callable[[Tensor], Any],
    per_eval: int | None = AUTO,
    *,
    future: bool = False,
    show_progress: bool = False,
    desc: str = "Perturbation attribution",
    cost: Callable[[Tensor], int] | None = None,
) -> Any:
    """:func:`sweep` (or :func:`sweep_future`) then ``finish(base)``: what ``attribute`` and
    ``attribute_future`` share. With ``future=True`` the result is a Future of ``finish``'s."""
    kw: dict[str, Any] = {"show_progress": show_progress, "desc": desc, "cost": cost}
    if future:
        return sweep_future(evaluate, values, plan, per_eval, **kw).then(
            lambda fut: finish(fut.value())
        )
    return finish(sweep(evaluate, values, plan, per_eval, **kw))
