"""Test conditional log-likelihoods of the JMVAE paper (Suzuki & Matsuo, eq. 11 and appendix A.1).

For a target modality ``x~`` and the modalities ``given`` (e.g. ``x, w``), eq. (11) is

    log p(x~|x, w)  ~=  log  int q(z|x, w) p(x~|z) dz
                    >=  int q(z|x, w) log p(x~|z) dz                  (Jensen)
                    ~=  (1/N) sum_{i=1}^N log p(x~|z^(i)),   z^(i) ~ q(z|x, w)

(the paper uses N = 10). The bound is estimated instead of the log of the sample average because
the latter is biased for a finite N (footnote 5). It is the negative reconstruction error of
``x~``: higher is better.

- "multiple" conditional log-likelihood: ``given`` holds the target (``log p(x~|x, w)``): how well
  the modality is reconstructed from all of them;
- "single" conditional log-likelihood: ``given`` lacks the target (``log p(x~|w)``): how well it is
  generated from the other modality (sec. 4.4). The latent then comes from the model's inference
  with the target missing: unimodal encoders (JMVAE-kl), products of experts, iterative sampling
  (JMVAE, hierarchical JMVAE), whatever ``model.inference_for(given)`` returns.

Appendix A.1 variants need no special case here, because they come from the model surface:

- CVAE, eq. (A.1): the decoder ``p(x~|z, w)`` has the observed parent ``w``; it is read from the
  batch by ``model.log_likelihood`` (only the ``given`` modalities and the target are passed, so a
  decoder never sees a modality that is not given);
- CMMA: eq. (11) with the model's own ``q(z|x, w)`` or, for the single one, its ``p(z|w)``;
- hierarchical JMVAE, eq. (A.2): only the top latent ``z_2 ~ q(z_2|x, w)`` is inferred and
  ``model.sample_latents`` completes ``z_1 ~ p(z_1|z_2)`` ancestrally, so each of the N rows is a
  one-sample estimate of ``int p(z_1|z_2) log p(x~|z_1) dz_1``.

With ``given`` empty the latent is drawn from the prior (``E_p(z)[log p(x~|z)] <= log p(x~)``).
Everything uses only ``model.sample_latents(batch, given, n_samples)`` (rows sample-major: row
``s * B + b`` is sample ``s`` of example ``b``) and ``model.log_likelihood(target, latents,
batch)``, so it works on every zoo model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from pixyz_zoo.checks import check_count
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.modalities import variable_names


def conditional_key(target: str, given: Sequence[str]) -> str:
    """The printed name of a conditional log-likelihood: ``"log p(x|w)"``, ``"log p(x|x,w)"``."""
    return f"log p({target}|{','.join(given)})" if given else f"log p({target})"


def _check_names(model: Any, data_modalities: Iterable[str], target: str, given: Sequence[str]) -> None:
    """Raise a ``KeyError`` naming the problem when ``target`` or ``given`` is not usable."""
    if not isinstance(target, str):
        raise TypeError(
            f"target is the one modality whose likelihood is measured, a name such as 'x'; got "
            f"{target!r}. For several targets, use conditional_log_likelihood_table(model, data, pairs)"
        )
    model_names = sorted(model.modalities)
    data_names = sorted(data_modalities)
    for role, names in (("target", [target]), ("given", list(given))):
        unknown = [n for n in names if n not in model.modalities]
        if unknown:
            raise KeyError(
                f"{role} modality {unknown} is not a modality of the model {type(model).__name__}; "
                f"it has {model_names}"
            )
        missing = [n for n in names if n not in data_names]
        if missing:
            raise KeyError(f"{role} modality {missing} is not in the data, which holds {data_names}")
    generated = model.modalities_in_generative() if hasattr(model, "modalities_in_generative") else None
    if generated is not None and target not in generated:
        raise ValueError(
            f"{type(model).__name__} has no decoder for {target!r} (it generates {generated}); "
            f"{conditional_key(target, given)} is not defined for this model"
        )
    if len(set(given)) != len(given):
        raise ValueError(f"given {list(given)} names a modality twice")


@torch.no_grad()
def conditional_log_likelihood_batch(
    model: Any,
    batch: dict[str, torch.Tensor],
    target: str,
    given: Sequence[str],
    n_samples: int = 10,
    max_rows: int = 20000,
) -> torch.Tensor:
    """Eq. (11) per example of ``batch``: ``(1/N) sum_i log p(target|z^(i))``, shape ``(B,)``.

    ``z^(i)`` are ``n_samples`` draws of ``model.sample_latents(batch, given)`` (the prior when
    ``given`` is empty). Samples are drawn in chunks of at most ``max_rows`` rows through the
    networks; within a chunk rows are sample-major (row ``s * B + b``: sample ``s`` of example
    ``b``).
    """
    n_samples = check_count(n_samples, "the number of samples N")
    given = variable_names(given)
    _check_names(model, batch, target, given)
    rows_in = {name: batch[name] for name in {*given, target}}
    size = len(batch[target])
    chunk = max(1, min(n_samples, max_rows // max(size, 1)))
    total = torch.zeros(size, dtype=torch.float64)
    done = 0
    while done < n_samples:
        c = min(chunk, n_samples - done)
        if given:
            latents = model.sample_latents(rows_in, given, n_samples=c)
        else:
            latents = model.sample_latents(None, [], n_samples=c, n=size)
        rows = len(next(iter(latents.values())))
        if rows != c * size:
            raise RuntimeError(
                f"{type(model).__name__}.sample_latents returned {rows} rows for {c} samples of "
                f"{size} examples; it must return n_samples * batch rows, sample-major"
            )
        log_p = model.log_likelihood(target, latents, rows_in)
        total += log_p.reshape(c, size).double().sum(dim=0).cpu()
        done += c
    return (total / n_samples).float()


@torch.no_grad()
def conditional_log_likelihood(
    model: Any,
    data: MultimodalDataset,
    target: str,
    given: Sequence[str],
    n_samples: int = 10,
    batch_size: int = 100,
    progress: bool = False,
    seed: int = 0,
    max_rows: int = 20000,
) -> float:
    """The test conditional log-likelihood of eq. (11), averaged over the examples of ``data``.

    Args:
        model: a zoo model (``sample_latents``, ``log_likelihood``, ``modalities``).
        data: the test set.
        target: the modality whose likelihood is measured (``x~``).
        given: the modalities the latent is inferred from. Holding ``target``: the "multiple"
            ``log p(x~|x, w)``; without it: the "single" ``log p(x~|w)`` (sec. 4.4).
        n_samples: N, the number of latent samples per example (10 in the paper).
        seed: seeds the latent samples and the data's dynamic binarisation, so that repeated
            evaluations agree.

    Returns:
        nats per example (a lower bound on the conditional log-likelihood, see the module notes).
    """
    from pixyz_zoo.progress import tqdm

    given = variable_names(given)
    _check_names(model, data.modalities, target, given)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    count = 0
    batches = data.batches(batch_size, generator=generator)
    for batch in tqdm(
        batches,
        total=data.num_batches(batch_size),
        disable=not progress,
        desc=conditional_key(target, given),
    ):
        values = conditional_log_likelihood_batch(model, batch, target, given, n_samples, max_rows)
        total += float(values.double().sum())
        count += len(values)
    if count == 0:
        raise ValueError("the data holds no example")
    return total / count


def default_pairs(modalities: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The paper's Table 1/2 columns: single then multiple conditional log-likelihoods.

    For two modalities ``(x, w)``: ``log p(x|w)``, ``log p(w|x)``, ``log p(x|x,w)``,
    ``log p(w|x,w)``. With more modalities: each target given each other modality alone, given
    all the others (when there are more than one), then given all modalities.
    """
    names = list(modalities)
    single = [(t, (g,)) for t in names for g in names if g != t]
    others = [(t, tuple(n for n in names if n != t)) for t in names] if len(names) > 2 else []
    multiple = [(t, tuple(names)) for t in names]
    return single + others + multiple


def conditional_log_likelihood_table(
    model: Any,
    data: MultimodalDataset,
    pairs: Iterable[tuple[str, Sequence[str]]] | None = None,
    n_samples: int = 10,
    batch_size: int = 100,
    progress: bool = False,
    seed: int = 0,
    max_rows: int = 20000,
) -> dict[str, float]:
    """Eq. (11) for several (target, given) pairs, keyed ``"log p(x|w)"``, ``"log p(x|x,w)"``...

    ``pairs`` defaults to :func:`default_pairs` of the model's modalities that the data holds (for
    a two-modality model: both single and both multiple conditional log-likelihoods, the columns
    of the paper's Tables 1 and 2), keeping the targets the model generates (a CVAE or CMMA has
    one direction). Every pair is evaluated with the same ``seed``.
    """
    if pairs is None:
        generated = set(model.modalities_in_generative())  # a conditional model generates only its target
        pairs = [
            (target, given)
            for target, given in default_pairs([m for m in model.modalities if m in data.modalities])
            if target in generated
        ]
    pairs = _check_pairs(pairs)
    out: dict[str, float] = {}
    for target, given in pairs:
        out[conditional_key(target, list(given))] = conditional_log_likelihood(
            model, data, target, list(given), n_samples, batch_size, progress, seed, max_rows
        )
    return out


def _check_pairs(pairs: Any) -> list[tuple[str, list[str]]]:
    """``pairs`` as a list of ``(target, given)``; anything else (a dict, one pair alone) is refused
    with the form to write."""
    form = "pairs is a list of (target, given) pairs, e.g. [('x', ['w']), ('x', ['x', 'w'])]"
    if isinstance(pairs, Mapping | str):
        raise TypeError(f"{form}; got a {type(pairs).__name__}")
    pairs = list(pairs)
    if len(pairs) == 2 and isinstance(pairs[0], str):
        raise TypeError(f"{form}; got one pair alone: write [{tuple(pairs)!r}]")
    for pair in pairs:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"{form}; one of them is {pair!r}")
    return [(target, variable_names(given)) for target, given in pairs]
