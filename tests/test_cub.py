"""CUB Image-Captions loader on a tiny folder written in the real (MMVAE archive) layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import pixyz_zoo  # noqa: F401, I001
from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, load_dataset
from pixyz_zoo.datasets.cub import (
    EOS,
    PAD,
    build_vocabulary,
    decode_caption,
    decode_captions,
    encode_caption,
    list_images,
    load_cub,
    tokenize,
)

RED, BLUE, GREEN, WHITE, BLACK = (230, 10, 10), (10, 10, 230), (10, 200, 10), (255, 255, 255), (0, 0, 0)
LONG = "four " + " ".join(["long"] * 40) + "."  # 42 tokens: truncated to 31 + <eos>


def train_captions() -> list[str]:
    """10 captions per train image (red, blue, green), with words of known counts:
    'rare3' 3 times (out: fewer than 4), 'four' 4 times (in), 'a' / 'with' 3 times (out)."""
    lines = [f"this bird is {colour}." for colour in ("red", "blue", "green") for _ in range(10)]
    lines[1] = "it's a bird with four rare3 wings."
    lines[11] = "a bird with four rare3 wings."
    lines[21] = "a bird with four rare3 feet."
    lines[22] = LONG
    return lines


def held_out_captions() -> list[str]:
    lines = [f"this bird is {colour}." for colour in ("white", "black") for _ in range(10)]
    lines[3] = "this purple bird is red."
    return lines


#: expected vocabulary: specials, then words seen at least 4 times in order of first appearance
VOCABULARY = ("<exc>", "<pad>", "<eos>", "this", "bird", "is", "red", ".", "four", "blue", "green", "long")


def solid(colour, width: int = 64, height: int = 64) -> np.ndarray:
    array = np.empty((height, width, 3), dtype=np.uint8)
    array[:] = colour
    return array


def write_cub(root: Path, train_lines=None, test_lines=None) -> Path:
    """A tiny <root>/cub: train 002 (2 images: JPEG 64x64, PNG 80x48) and 003 (1 PNG, a stray text
    file); test 001 and 004 (1 PNG each); the two caption files."""
    from PIL import Image

    folder = root / "cub"
    images = {
        "train/002.Laysan_Albatross/Laysan_Albatross_0001.jpg": solid(RED),
        "train/002.Laysan_Albatross/Laysan_Albatross_0002.png": solid(BLUE, 80, 48),
        "train/003.Sooty_Albatross/Sooty_Albatross_0001.png": solid(GREEN),
        "test/001.Black_footed_Albatross/Black_Footed_Albatross_0001.png": solid(WHITE),
        "test/004.Groove_billed_Ani/Groove_Billed_Ani_0001.png": solid(BLACK, 32, 32),
    }
    for name, array in images.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".jpg"):
            Image.fromarray(array).save(path, quality=95, subsampling=0)
        else:
            Image.fromarray(array).save(path)
    (folder / "train/003.Sooty_Albatross/notes.txt").write_text("not an image")
    lines_train = train_captions() if train_lines is None else train_lines
    lines_test = held_out_captions() if test_lines is None else test_lines
    (folder / "text_trainvalclasses.txt").write_text("\n".join(lines_train) + "\n")
    (folder / "text_testclasses.txt").write_text("\n".join(lines_test) + "\n")
    return folder


def expected_words(caption: str) -> list[str]:
    """What a caption should decode to: at most 31 tokens, unknown ones as <exc>."""
    return [w if w in VOCABULARY else "<exc>" for w in tokenize(caption)[:31]]


@pytest.fixture
def cub_root(tmp_path) -> Path:
    write_cub(tmp_path)
    return tmp_path


def test_registered():
    assert "cub" in DATASETS and not DATASETS["cub"].offline


def test_tokenize_and_vocabulary_rule():
    assert tokenize("it's a bird, don't fly-by 3.5 cm.") == [
        "it", "'s", "a", "bird", ",", "do", "n't", "fly-by", "3.5", "cm", ".",
    ]  # fmt: skip
    assert tokenize("black,white,gray.") == ["black", ",", "white", ",", "gray", "."]
    assert build_vocabulary([tokenize(c) for c in train_captions()]) == VOCABULARY
    # min_count is "at least": 3 occurrences pass with min_count=3
    assert "rare3" in build_vocabulary([tokenize(c) for c in train_captions()], min_count=3)
    word_index = {w: i for i, w in enumerate(VOCABULARY)}
    indices = encode_caption(["this", "bird", "zzz"], word_index, max_length=6)
    assert [VOCABULARY[i] for i in indices] == ["this", "bird", "<exc>", EOS, PAD, PAD]
    assert decode_caption(indices, VOCABULARY) == ["this", "bird", "<exc>"]
    assert decode_caption(indices, VOCABULARY, strip=False)[-3:] == [EOS, PAD, PAD]


def test_train_shapes_vocabulary_images_labels(cub_root):
    train = load_dataset("cub", "train", root=str(cub_root))
    assert len(train) == 3  # caption_index=0: one example per image
    x, t = train.modalities["x"], train.modalities["t"]
    assert (x.shape, x.likelihood) == ((3, 64, 64), "laplace")
    assert (t.shape, t.likelihood) == ((32, len(VOCABULARY)), "categorical") and t.is_sequence
    assert t.labels == VOCABULARY and train.vocabulary == VOCABULARY
    captions = train.tensors["t"]
    assert captions.dtype == torch.float32 and captions.sum(-1).eq(1).all()  # one-hot everywhere
    assert [train.decode_caption(c) for c in captions] == [
        ["this", "bird", "is", colour, "."] for colour in ("red", "blue", "green")
    ]
    # images in ImageFolder order, in [0, 1], the 80x48 PNG resized to 64x64
    images = train.tensors["x"]
    assert images.shape == (3, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
    for image, colour in zip(images, (RED, BLUE, GREEN), strict=True):
        expected = torch.tensor(colour, dtype=torch.float32)[:, None, None] / 255
        torch.testing.assert_close(image, expected.expand_as(image), atol=0.03, rtol=0)
    # bird classes: the sorted class folders of train/ and test/ together
    assert train.classes == (
        "001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Groove_billed_Ani",
    )  # fmt: skip
    assert train.labels.tolist() == [1, 1, 2]
    batch = next(train.batches(2))
    assert batch["x"].shape == (2, 3, 64, 64) and batch["t"].shape == (2, 32, len(VOCABULARY))
    part = train.subset(slice(1, 3))
    assert part.decode_caption(part.tensors["t"][0]) == ["this", "bird", "is", "blue", "."]
    # memory: exactly n x 32 x V float32 captions and n x 3 x 64 x 64 float32 images
    assert captions.nbytes == 3 * 32 * len(VOCABULARY) * 4 and images.nbytes == 3 * 3 * 64 * 64 * 4


def test_truncation_padding_and_out_of_vocabulary(cub_root):
    second = load_cub("train", root=cub_root, caption_index=1, progress=False)
    assert second.decode_caption(second.tensors["t"][0]) == ["<exc>"] * 3 + ["bird", "<exc>", "four"] + [
        "<exc>", "<exc>", ".",
    ]  # fmt: skip
    third = load_cub("train", root=cub_root, caption_index=2, progress=False)
    tokens = third.tensors["t"].argmax(-1)
    eos, pad = VOCABULARY.index(EOS), VOCABULARY.index(PAD)
    assert (tokens == eos).sum(1).tolist() == [1, 1, 1]  # every caption has exactly one <eos>
    # the 42-token caption: 31 tokens then <eos>, no padding
    assert third.decode_caption(third.tensors["t"][2]) == ["four"] + ["long"] * 30
    assert tokens[2, 31] == eos and not (tokens[2] == pad).any()
    # a 5-token caption: <eos> at position 5, then 26 <pad>
    assert tokens[0, 5] == eos and tokens[0, 6:].eq(pad).all()
    words = third.decode_caption(third.tensors["t"][0], strip=False)
    assert words[:6] == ["this", "bird", "is", "red", ".", EOS] and words[6:] == [PAD] * 26


def test_all_captions_round_trip_and_subset(cub_root):
    full = load_cub("train", root=cub_root, caption_index="all", progress=False)
    assert len(full) == 30
    assert full.labels.tolist() == [1] * 20 + [2] * 10
    assert decode_captions(full.tensors["t"], full.modalities["t"]) == [
        expected_words(c) for c in train_captions()
    ]
    single = load_cub("train", root=cub_root, progress=False)
    torch.testing.assert_close(full.tensors["x"], single.tensors["x"].repeat_interleave(10, 0))
    # max_examples: a seeded subset of those examples, in their original order
    picked = load_cub("train", root=cub_root, caption_index="all", max_examples=7, seed=3, progress=False)
    again = load_cub("train", root=cub_root, caption_index="all", max_examples=7, seed=3, progress=False)
    assert len(picked) == 7 and torch.equal(picked.tensors["t"], again.tensors["t"])
    flat = full.tensors["t"].argmax(-1)
    rows = [int((flat == row).all(1).nonzero()[0]) for row in picked.tensors["t"].argmax(-1)]
    assert rows == sorted(rows)
    torch.testing.assert_close(picked.tensors["x"], full.tensors["x"][rows])
    assert picked.labels.tolist() == full.labels[rows].tolist()
    assert len(load_cub("train", root=cub_root, max_examples=100, progress=False)) == 3


def test_test_split_uses_the_training_vocabulary(cub_root):
    test = load_dataset("cub", "test", root=str(cub_root))
    train = load_cub("train", root=cub_root, progress=False)
    assert len(test) == 2 and test.vocabulary == VOCABULARY
    assert test.classes == train.classes and test.labels.tolist() == [0, 3]
    assert test.decode_caption(test.tensors["t"][0]) == ["this", "bird", "is", "<exc>", "."]  # white
    fourth = load_cub("test", root=cub_root, caption_index=3, progress=False)
    assert fourth.decode_caption(fourth.tensors["t"][0]) == ["this", "<exc>", "bird", "is", "red", "."]
    torch.testing.assert_close(test.tensors["x"][0], torch.ones(3, 64, 64))
    torch.testing.assert_close(test.tensors["x"][1], torch.zeros(3, 64, 64))  # 32x32 resized


def test_image_order_matches_torchvision_image_folder(cub_root):
    from torchvision.datasets import ImageFolder

    for split in ("train", "test"):
        paths, owners = list_images(cub_root / "cub" / split)
        folder = ImageFolder(str(cub_root / "cub" / split))
        assert paths == [Path(p) for p, _ in folder.samples]
        assert owners == [folder.classes[c] for _, c in folder.samples]


def test_decode_caption_inputs():
    logits = torch.randn(4, len(VOCABULARY))
    logits[:, VOCABULARY.index("bird")] += 100
    assert decode_caption(logits, VOCABULARY) == ["bird"] * 4
    with pytest.raises(ValueError, match=r"shape \(length, 12\)"):
        decode_caption(torch.randn(4, 5), VOCABULARY)
    with pytest.raises(ValueError, match="use decode_captions"):
        decode_caption(torch.randn(2, 4, len(VOCABULARY)), VOCABULARY)


def test_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cub", "train")
    message = str(err.value)
    for part in ("text_trainvalclasses.txt", "train"):
        assert str(tmp_path / "cub" / part) in message
    assert "cub.zip" in message and DATA_ROOT_ENV in message and "--data-root" in message
    # the test split also needs the training captions (the vocabulary) and its own files
    write_cub(tmp_path)
    (tmp_path / "cub" / "text_testclasses.txt").unlink()
    with pytest.raises(FileNotFoundError, match="text_testclasses.txt") as err:
        load_cub("test", root=tmp_path, download=True, progress=False)
    assert "does not download" in str(err.value)
    assert len(load_cub("train", root=tmp_path, progress=False)) == 3  # train does not need it


def test_malformed_inputs(tmp_path):
    write_cub(tmp_path, train_lines=train_captions()[:-1])
    with pytest.raises(ValueError, match="29 captions but .* 3 images"):
        load_cub("train", root=tmp_path, progress=False)
    write_cub(tmp_path)
    for bad in (10, -1, "first", True):
        with pytest.raises(ValueError, match="caption_index must be"):
            load_cub("train", root=tmp_path, caption_index=bad, progress=False)
    with pytest.raises(ValueError, match="split must be"):
        load_cub("valid", root=tmp_path)
    empty = tmp_path / "empty"
    write_cub(empty)
    for path in sorted((empty / "cub" / "test").rglob("*.png")):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        load_cub("test", root=empty, progress=False)


def test_documented_memory_figures():
    """The module docstring's numbers for the real sizes (8,855 / 2,933 images, V = 1,590)."""
    image, caption = 3 * 64 * 64 * 4, 32 * 1590 * 4
    assert (image, caption) == (49_152, 203_520)
    assert round(8855 * image / 1e9, 2) == 0.44 and round(8855 * caption / 1e9, 2) == 1.80
    assert round(8855 * (image + caption) / 1e9, 2) == 2.24
    assert round(2933 * (image + caption) / 1e9, 2) == 0.74
    assert round(88550 * (image + caption) / 1e9, 1) == 22.4
    assert round(29330 * (image + caption) / 1e9, 1) == 7.4
    assert round(20000 * (image + caption) / 1e9, 1) == 5.1
