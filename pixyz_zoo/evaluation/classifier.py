"""Classifiers trained by the zoo, and the accuracy of cross-modal generation (coherence).

The JMVAE paper (Suzuki & Matsuo, sec. 4.5 and 4.6) judges bidirectional generation by eye (Fig.
3, 6, 9) and by the single conditional log-likelihoods (eq. 11). Two accuracies make the same
judgement a number, as later multimodal-VAE papers do (MVAE, MMVAE, MoPoE: "coherence"):

- a categorical modality generated from another one (label ``w`` generated from image ``x``):
  the accuracy of ``argmax`` of the generated label against the true label;
- an image generated from a label (``x`` from ``w``): the accuracy, against the true label, of a
  classifier trained on the real training images (:func:`train_classifier`).

``train_classifier`` trains a small MLP or CNN from any image (or vector) modality to any
categorical modality of a dataset, or (``label=None``) to the dataset's own class labels
``data.labels`` that no model sees (the digit shown by every modality of MNIST-SVHN-Text, used by
the multimodal coherence of :mod:`pixyz_zoo.evaluation.multimodal`), and caches it in
``cache_dir`` so it is trained once per setting. It is trained on the dataset's stored values
(``data.tensors``: grey levels, not dynamically binarised draws) because generated images are
decoder means, i.e. grey levels too.
(With a ``fixed``-binarised test set, ``accuracy(test)`` scores binary images: on the 8x8 digits
that costs about 10 points of accuracy, on 28x28 MNIST (mnist-10k) 1-2 points.)
``cross_modal_accuracy`` uses only ``model.generate(batch, given, targets)``, so it works on
every zoo model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixyz_zoo.checks import check_count, check_integer, check_positive
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions.networks import MLP, check_widths
from pixyz_zoo.modalities import Modality, variable_names

CLASSIFIER_FORMAT = 1
ARCHS = ("mlp", "conv")
DATA_LABELS = "label"  # name of the class variable of a classifier of ``data.labels``


def data_label_modality(data: MultimodalDataset) -> Modality:
    """The dataset's class labels ``data.labels`` declared as a one-hot categorical modality.

    Its ``labels`` are ``data.classes`` (or ``"0", "1", ...`` when the dataset names none).
    """
    labels = getattr(data, "labels", None)
    if labels is None:
        raise ValueError(
            f"the dataset {data.name!r} has no class labels (data.labels is None): pass the name of a "
            f"categorical modality as label=, one of {sorted(data.modalities)}"
        )
    classes = tuple(getattr(data, "classes", ()) or ())
    if not classes:
        classes = tuple(str(i) for i in range(int(labels.max()) + 1 if len(labels) else 1))
    if len(labels) and int(labels.max()) >= len(classes):
        raise ValueError(
            f"the dataset {data.name!r} has class index {int(labels.max())} but names only "
            f"{len(classes)} classes"
        )
    return Modality(DATA_LABELS, (len(classes),), "categorical", labels=classes)


class ConvClassifierNet(nn.Module):
    """Two 3x3 convolution + ReLU + 2x2 max-pooling blocks, then a 128-unit hidden layer.

    Works on images of any size (pooling stops where a side would drop below 1 pixel).
    """

    def __init__(self, shape: Sequence[int], classes: int, channels: Sequence[int] = (32, 64)) -> None:
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        last = c
        for ch in channels:
            layers += [nn.Conv2d(last, ch, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            last = ch
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(last * h * w, 128), nn.ReLU(), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ModalityClassifier(nn.Module):
    """``input`` modality -> class of a categorical ``label`` modality.

    Args:
        input: the modality classified (an image for ``arch="conv"``).
        label: a categorical modality (one-hot); its ``labels`` name the classes.
        arch: ``"mlp"`` (on the flattened input) or ``"conv"``.
        hidden: hidden widths of the MLP.
        uses_data_labels: the classes are the dataset's ``data.labels`` (``label`` is then
            :func:`data_label_modality`), not a modality of the data.
    """

    def __init__(
        self,
        input: Modality,
        label: Modality,
        arch: str = "mlp",
        hidden: Sequence[int] = (256, 256),
        uses_data_labels: bool = False,
    ) -> None:
        super().__init__()
        if not label.is_label:
            raise ValueError(
                f"the label modality {label.name!r} is {label.kind}, not one class label: a "
                "classifier needs one-hot class labels of shape (classes,)"
            )
        if arch not in ARCHS:
            raise ValueError(f"unknown classifier architecture {arch!r}; choose one of {ARCHS}")
        if arch == "conv" and not input.is_image:
            raise ValueError(
                f"arch='conv' needs an image modality (channels, height, width); {input.name!r} has "
                f"shape {input.shape}: use arch='mlp'"
            )
        self.input_modality, self.label_modality, self.arch = input, label, arch
        self.uses_data_labels = bool(uses_data_labels)
        classes = label.shape[0]
        self.net = (
            ConvClassifierNet(input.shape, classes) if arch == "conv" else MLP(input.dim, classes, hidden)
        )

    @property
    def input(self) -> str:
        """Name of the classified modality."""
        return self.input_modality.name

    @property
    def label(self) -> str:
        """Name of the categorical modality predicted."""
        return self.label_modality.name

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.label_modality.labels) or tuple(str(i) for i in range(self.label_modality.dim))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.net(x)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last hidden layer (the input to the final linear layer), flattened."""
        if isinstance(self.net, ConvClassifierNet):
            return self.net.head[:-1](self.net.features(x))
        return self.net.net[:-1](x.flatten(1))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Penultimate-layer features (N, D) of a batch of the input modality (on ``x``'s device).

        The in-domain features of the Fréchet distance of :mod:`pixyz_zoo.evaluation.multimodal`.
        """
        self.input_modality.check(x)
        self.eval()
        out = [self.penultimate(chunk.to(self.device)) for chunk in x.split(batch_size)]
        if not out:
            raise ValueError("features of an empty batch (N = 0)")
        return torch.cat(out).to(x.device)

    def truth(self, data: MultimodalDataset) -> torch.Tensor:
        """The true class index of every example of ``data`` (its labels or label modality)."""
        if self.uses_data_labels:
            if getattr(data, "labels", None) is None:
                raise ValueError(
                    f"the classifier predicts the dataset's class labels, but {data.name!r} has none "
                    "(data.labels is None)"
                )
            return data.labels
        if self.label not in data.tensors:
            raise KeyError(
                f"the classifier reads {self.label!r}, which the data lacks; it has {sorted(data.tensors)}"
            )
        return data.tensors[self.label].argmax(1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Class indices of a batch of the input modality (on ``x``'s device)."""
        self.input_modality.check(x)
        self.eval()
        out = [self(chunk.to(self.device)).argmax(1) for chunk in x.split(batch_size)]
        return torch.cat(out).to(x.device) if out else torch.zeros(0, dtype=torch.long, device=x.device)

    @torch.no_grad()
    def accuracy(self, data: MultimodalDataset, batch_size: int = 1000) -> float:
        """Accuracy on the stored examples of ``data`` (its ``input`` tensor against its ``label``
        tensor, or against ``data.labels`` for a classifier of the dataset's labels)."""
        if self.input not in data.tensors:
            raise KeyError(
                f"the classifier reads {self.input!r}, which the data lacks; it has {sorted(data.tensors)}"
            )
        truth = self.truth(data)
        predicted = self.predict(data.tensors[self.input], batch_size).cpu()
        return float((predicted == truth).float().mean())


def _fingerprint(data: MultimodalDataset, input: str, label: str | None) -> str:
    """A hash of the examples (a strided subsample of at most ~1M input values, every label).

    ``label=None`` hashes the dataset's class labels ``data.labels``.
    """
    digest = hashlib.sha1()
    x = data.tensors[input]
    y = data.labels if label is None else data.tensors[label]
    digest.update(repr((tuple(x.shape), tuple(y.shape))).encode())
    flat = x.reshape(-1)
    stride = max(1, flat.numel() // (1 << 20))
    digest.update(flat[::stride].float().contiguous().numpy().tobytes())
    indices = y if label is None else y.argmax(1)
    digest.update(indices.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def classifier_path(
    cache_dir: str | os.PathLike, dataset: str, input: str, label: str, settings: dict
) -> Path:
    """``cache_dir/classifier-<dataset>-<input>-<label>-<hash of settings>.pt``."""
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset}-{input}-{label}")
    return Path(cache_dir) / f"classifier-{safe}-{key}.pt"


def _save_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fit(
    classifier: ModalityClassifier,
    data: MultimodalDataset,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool,
) -> None:
    """Adam on the cross-entropy, minibatches shuffled with ``seed``."""
    from pixyz_zoo.progress import tqdm

    x, y = data.tensors[classifier.input], classifier.truth(data)
    device = classifier.device
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    classifier.train()
    for _ in tqdm(
        range(epochs), disable=not progress, desc=f"classifier {classifier.input}->{classifier.label}"
    ):
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            logits = classifier(x[idx].to(device))
            loss = nn.functional.cross_entropy(logits, y[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    classifier.eval()


def train_classifier(
    data: MultimodalDataset,
    input: str = "x",
    label: str | None = "y",
    epochs: int = 10,
    arch: str = "mlp",
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    hidden: Sequence[int] = (256, 256),
    batch_size: int = 128,
    lr: float = 1e-3,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> ModalityClassifier:
    """Train (or load from ``cache_dir``) a classifier ``input -> label`` on ``data``.

    ``label`` is a categorical modality of ``data``, or ``None`` for the dataset's class labels
    ``data.labels`` (named by ``data.classes``; see :func:`data_label_modality`). Inputs are the
    stored values (grey levels for images). The cache file
    ``classifier-<dataset>-<input>-<label>-<hash>.pt`` is keyed on every setting
    and on a fingerprint of the examples, written atomically and read with
    ``torch.load(weights_only=True)``; a damaged file is retrained with a warning. Training is
    deterministic given ``seed`` (on one device) and leaves the global random state untouched.
    """
    from pixyz_zoo.training import resolve_device

    for name in (input,) if label is None else (input, label):
        if name not in data.modalities:
            hint = (
                "; its examples carry class labels (data.labels): label=None trains on them"
                if name == label and data.labels is not None
                else ""
            )
            raise KeyError(
                f"{name!r} is not a modality of the dataset {data.name!r}: {sorted(data.modalities)}{hint}"
            )
    epochs = check_integer(epochs, "epochs", 0)  # 0: an untrained classifier
    batch_size = check_count(batch_size, "batch_size")
    check_positive(lr, "lr, the classifier's learning rate,")
    hidden = list(check_widths(hidden))
    in_mod = data.modalities[input]
    label_mod = data_label_modality(data) if label is None else data.modalities[label]
    settings = {
        "format": CLASSIFIER_FORMAT,
        "dataset": data.name,
        "examples": len(data),
        "data": _fingerprint(data, input, label),
        "input": [input, list(in_mod.shape), in_mod.likelihood],
        "label": [label, list(label_mod.shape)] if label is not None else [None, list(label_mod.labels)],
        "arch": arch,
        "hidden": hidden if arch == "mlp" else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
    }
    target_device = resolve_device(device)
    path = (
        classifier_path(cache_dir, data.name, input, DATA_LABELS + "s" if label is None else label, settings)
        if cache_dir is not None
        else None
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = ModalityClassifier(in_mod, label_mod, arch, hidden, uses_data_labels=label is None)
    if path is not None and path.exists():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("settings") != settings:
                raise ValueError("its settings differ from the requested ones")
            classifier.load_state_dict(payload["state_dict"])
            return classifier.to(target_device).eval()
        except Exception as error:  # a damaged or foreign file: train again
            warnings.warn(f"ignoring the cached classifier {path} ({error}); training it again", stacklevel=2)
    classifier.to(target_device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _fit(classifier, data, epochs, batch_size, lr, seed, progress)
    if path is not None:
        state = {k: v.detach().cpu() for k, v in classifier.state_dict().items()}
        _save_atomic(path, {"settings": settings, "state_dict": state})
    return classifier


@torch.no_grad()
def cross_modal_accuracy(
    model: Any,
    data: MultimodalDataset,
    given: Sequence[str],
    target: str,
    classifier: Any | None = None,
    batch_size: int = 100,
    label: str | None = None,
    sample_latent: bool = True,
    seed: int = 0,
) -> float:
    """Accuracy of ``target`` generated from the modalities ``given``.

    Without ``classifier``, ``target`` must be categorical: the accuracy of ``argmax`` of the
    generated target (e.g. the label ``w`` generated from the image ``x``) against its true value.
    With ``classifier`` (anything with ``predict(tensor) -> class indices`` and a ``label`` name,
    such as :class:`ModalityClassifier`), the classifier's accuracy on the generated target (e.g.
    the image ``x`` generated from ``w``) against the true ``label`` modality of the example
    (default: the classifier's label; the conditional coherence of later papers). A classifier of
    the dataset's class labels (``train_classifier(..., label=None)``) is scored against
    ``data.labels``.

    Only the ``given`` modalities of a batch are passed to
    ``model.generate(batch, given, [target], sample_latent=...)``: the target never leaks in.
    """
    given = variable_names(given)
    for role, names in (("given", given), ("target", [target])):
        missing = [n for n in names if n not in data.modalities]
        if missing:
            raise KeyError(
                f"{role} modality {missing} is not in the data, which holds {sorted(data.modalities)}"
            )
    if classifier is None:
        if not data.modalities[target].is_label:
            raise ValueError(
                f"{target!r} is {data.modalities[target].kind}, not one class label: pass a "
                "classifier (train_classifier(train_data, input=..., label=...)) to score it"
            )
        truth_name = target
    elif label is None and getattr(classifier, "uses_data_labels", False):
        truth_name = None
        if getattr(data, "labels", None) is None:
            raise ValueError(
                f"the classifier predicts the dataset's class labels, but {data.name!r} has none "
                "(data.labels is None)"
            )
    else:
        truth_name = label or classifier.label
        if truth_name not in data.modalities or not data.modalities[truth_name].is_label:
            raise KeyError(
                f"the true label {truth_name!r} must be a categorical modality of the data: "
                f"{sorted(data.modalities)}"
            )
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    correct = total = 0
    for batch in data.batches(batch_size, generator=generator):  # in order: data.labels line up
        inputs = {g: batch[g] for g in given}
        generated = model.generate(inputs, given=given, targets=[target], sample_latent=sample_latent)[target]
        if len(generated) != len(batch[target]):
            raise RuntimeError(
                f"the model generated {len(generated)} rows for a batch of {len(batch[target])}"
            )
        if classifier is None:
            predicted = generated.argmax(1)
        else:
            predicted = classifier.predict(generated)
        if truth_name is None:
            truth = data.labels[total : total + len(predicted)]
        else:
            truth = batch[truth_name].argmax(1)
        correct += int((predicted.cpu() == truth).sum())
        total += len(truth)
    if total == 0:
        raise ValueError("the data holds no example")
    return correct / total
