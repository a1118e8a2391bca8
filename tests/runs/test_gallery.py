"""The report's example gallery (memscore.runs.gallery): per-example AUC against
membership_metrics, the PNG thumbnails, the hooks, the thumbnail cap (issue 23 items 1, 3)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import memscore
from memscore._plot import png_bytes
from memscore.runs.gallery import as_thumbnail, per_example_auc, predicted_labels, token_examples

pytest.importorskip("matplotlib")

from memscore.runs.report import write_report  # noqa: E402

PAYLOAD = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def _decode_png(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit grayscale or RGB PNG with filter 0 (what png_bytes writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, head = 8, b"", b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body)
        head, idat = (body, idat) if kind == b"IHDR" else (head, idat + body if kind == b"IDAT" else idat)
        pos += 12 + n
    w, h, depth, color = struct.unpack(">IIBB", head[:10])
    ch = 3 if color == 2 else 1
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch)
    assert depth == 8 and (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape((h, w, ch) if ch == 3 else (h, w))


def test_png_round_trip() -> None:
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 5), (32, 32, 3), (7, 2, 3)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(_decode_png(png_bytes(a)), a)
    for bad in (np.zeros((2, 2)), np.zeros((2, 2, 4), np.uint8), np.zeros((0, 3), np.uint8)):
        with pytest.raises(ValueError, match="image"):
            png_bytes(bad)


def test_thumbnails_of_every_layout() -> None:
    assert as_thumbnail("3 + 4 = 7") is None
    assert as_thumbnail(np.ones((8, 8))).shape == (48, 48)  # floats in [0, 1], scaled up by whole pixels
    assert as_thumbnail(np.zeros((3, 32, 32), np.uint8)).shape == (64, 64, 3)  # (C, H, W) -> (H, W, C)
    assert as_thumbnail(np.zeros((1, 28, 28), np.uint8)).shape == (56, 56)
    sig = as_thumbnail(np.sin(np.arange(40.0)))  # a 1-D signal: a line plot
    assert sig is not None and sig.ndim == 2 and (sig < 255).any()
    with pytest.raises(ValueError, match="example"):
        as_thumbnail(np.zeros((2, 3, 4, 5)))


def _reference_auc(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.array([memscore.membership_metrics(s[:, i], m[:, i]).auc for i in range(s.shape[1])])


@pytest.mark.parametrize("seed", range(5))
def test_per_example_auc_is_membership_metrics_per_column(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r, n = int(rng.integers(1, 12)), 30
    s = rng.integers(0, 4, (r, n)).astype(float)  # many ties
    s[rng.random((r, n)) < 0.2] = np.nan
    s[rng.random((r, n)) < 0.05] = 1e308
    m = rng.random((r, n)) < 0.5
    m[:, 0], m[:, 1] = True, False  # all in, all out
    np.testing.assert_allclose(per_example_auc(s, m), _reference_auc(s, m), equal_nan=True)


def test_per_example_auc_counts_tied_infinite_scores_one_half() -> None:
    # LiRA offline gives -inf; two equal -inf are a tie (membership_metrics, which finds
    # ties by np.diff, sees inf - inf = nan as a step and gives 1.0 here)
    s = np.array([[-np.inf], [-np.inf], [1.0]])
    assert per_example_auc(s, np.array([[True], [False], [True]]))[0] == 0.75


def test_per_example_auc_edge_cases() -> None:
    assert np.isnan(per_example_auc(np.array([[1.0]]), np.array([[True]]))).all()
    s = np.array([[3.0, np.nan], [1.0, np.nan]])
    np.testing.assert_array_equal(per_example_auc(s, np.array([[True, True], [False, False]])), [1.0, np.nan])
    assert per_example_auc(np.zeros((0, 2)), np.zeros((0, 2), bool)).shape == (2,)


def _store(path: Path, seed: int = 0) -> memscore.RunStore:
    rng = np.random.default_rng(seed)
    n, t, c = 40, 6, 3
    y = rng.integers(0, c, n)
    s = memscore.RunStore.create(path, n_train=n, n_test=t, train_labels=y, test_labels=rng.integers(0, c, t),
                                 n_classes=c)  # fmt: skip
    for _ in range(12):
        mask = rng.random(n) < 0.5
        pred = np.where(rng.random(n) < 0.6 + 0.3 * mask, y, (y + 1) % c)  # members fit better
        logits = rng.normal(size=(n, c)) + 4 * np.eye(c)[pred]
        s.add_run(mask, train_logits=logits, test_logits=rng.normal(size=(t, c)))
    return s


def test_predicted_labels_are_the_held_out_majority(tmp_path: Path) -> None:
    s = _store(tmp_path / "s")
    masks, pred = s.masks(), s.outcomes("train", "pred")
    got = predicted_labels(s)
    assert got is not None
    for i in range(s.n_train):
        votes = np.bincount(pred[~masks[:, i], i], minlength=3)
        assert got[i] == (int(np.argmax(votes)) if votes.sum() else -1)


def test_report_with_hooks_escapes_and_caps_thumbnails(tmp_path: Path) -> None:
    s = _store(tmp_path / "s")
    page = write_report(
        s.path, tmp_path / "rep", examples=lambda i: np.full((4, 4), i, np.uint8),
        test_examples=lambda i: f"{PAYLOAD} {i}", max_thumbnails=7,
    )  # fmt: skip
    html = page.read_text()
    thumbs = sorted(p.name for p in (tmp_path / "rep").glob("ex-*.png"))
    assert len(thumbs) == 7 and all(t.startswith("ex-train-") for t in thumbs)
    assert "(thumbnail cap reached)" in html
    assert PAYLOAD not in html and "&lt;script&gt;alert(1)" in html  # the hook's text, escaped
    assert html.count("<script") == 1 and "membership_roc.png" in html and 'id="membership-exposed"' in html
    i = int(thumbs[0][len("ex-train-") : -4])
    np.testing.assert_array_equal(_decode_png((tmp_path / "rep" / thumbs[0]).read_bytes()), np.full((48, 48), i))
    with pytest.raises(TypeError, match="examples"):
        write_report(s.path, tmp_path / "rep2", examples="not a function")  # type: ignore[arg-type]


def test_token_examples_decode() -> None:
    hook = token_examples(np.array([[104, 105], [111, 107]]), lambda ids: "".join(map(chr, ids)))
    assert hook(0) == "hi" and hook(1) == "ok"
