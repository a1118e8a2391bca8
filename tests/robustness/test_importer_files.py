"""Importers refuse malformed files with an ImportFileError naming the file (never a bare
JSONDecodeError, KeyError, "cannot reshape", UnpicklingError or MemoryError), refuse values
that do not fit float32 instead of casting them to inf, refuse complex arrays, keep flags
that are not 0/1, and float labels that are not integral."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memscore.errors import ImportFileError, MemscoreError
from memscore.runs import importers

N, T = 6, 3


def _release(d: Path, *, y: np.ndarray | None = None, done: np.ndarray | None = None) -> None:
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "masks.npy", np.arange(4 * N).reshape(4, N) % 2 == 0)
    np.save(d / "margins.npy", np.ones((4, T), np.float32) if y is None else y)
    if done is not None:
        np.save(d / "_completed.npy", done)


def test_error_class() -> None:
    assert issubclass(ImportFileError, MemscoreError) and issubclass(ImportFileError, ValueError)


# ----------------------------------------------------------------------- datamodels release


def test_release_outcomes_beyond_float32_are_refused(tmp_path: Path) -> None:
    y = np.ones((4, T))
    y[2, 1] = 1e40
    _release(tmp_path, y=y)
    with pytest.raises(ImportFileError, match=r"margins\.npy.*model 2.*float32"):
        importers.read_datamodels_release(tmp_path)
    y[2, 1] = 1e30  # fits: read as is
    _release(tmp_path, y=y)
    assert importers.read_datamodels_release(tmp_path)[1][2, 1] == np.float32(1e30)


def test_release_complex_outcomes_are_refused(tmp_path: Path) -> None:
    _release(tmp_path, y=np.ones((4, T), np.complex128))
    with pytest.raises(ImportFileError, match=r"margins\.npy.*complex"):
        importers.read_datamodels_release(tmp_path)


@pytest.mark.parametrize("done", [np.array([0.3, 1, 1, 1]), np.array([2, 1, 0, 1]), np.ones(4, np.complex64)])
def test_release_completed_must_be_flags(tmp_path: Path, done: np.ndarray) -> None:
    _release(tmp_path, done=done)
    with pytest.raises(ImportFileError, match="_completed.npy"):
        importers.read_datamodels_release(tmp_path)


def test_release_completed_0_1_ints_are_flags(tmp_path: Path) -> None:
    _release(tmp_path, done=np.array([1, 0, 1, 1], np.int8))
    assert importers.read_datamodels_release(tmp_path)[1].shape == (3, T)


@pytest.mark.parametrize(
    "text",
    [
        '{"num_models": 4, "schema": {"masks": {"shape": [6]',  # truncated
        '{"num_models": 4, "schema": ["masks"]}',
        '{"num_models": "4", "schema": {}}',
        '{"num_models": 4, "schema": {"masks": "bool"}}',
        '{"num_models": 4, "schema": {"masks": {"shape": "6"}}}',
        '{"num_models": 4, "schema": {"masks": {"shape": [6], "dtype": "no_such_dtype"}}}',
    ],
)
def test_release_malformed_spec(tmp_path: Path, text: str) -> None:
    _release(tmp_path)
    (tmp_path / "spec.json").write_text(text)
    with pytest.raises(ImportFileError, match="spec.json"):
        importers.read_datamodels_release(tmp_path)


def test_release_unrelated_json_is_ignored(tmp_path: Path) -> None:
    _release(tmp_path)
    (tmp_path / "notes.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    assert importers.read_datamodels_release(tmp_path)[1].shape == (4, T)


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY", b"garbage, not npy", b"PK\x03\x04zip"])
def test_release_unreadable_npy(tmp_path: Path, content: bytes) -> None:
    _release(tmp_path)
    (tmp_path / "masks.npy").write_bytes(content)
    with pytest.raises(ImportFileError, match="masks.npy"):
        importers.read_datamodels_release(tmp_path)


def test_release_truncated_npy(tmp_path: Path) -> None:
    _release(tmp_path)
    raw = (tmp_path / "margins.npy").read_bytes()
    (tmp_path / "margins.npy").write_bytes(raw[:-5])
    with pytest.raises(ImportFileError, match="margins.npy"):
        importers.read_datamodels_release(tmp_path)


# ----------------------------------------------------------------------- LiRA


def _lira(d: Path, *, keep: np.ndarray | None = None, labels: np.ndarray | None = None,
          z: np.ndarray | None = None) -> None:  # fmt: skip
    rng = np.random.default_rng(0)
    np.save(d / "y_train.npy", rng.integers(0, 3, N) if labels is None else labels)
    for e in range(2):
        x = d / f"experiment-{e}_2"
        (x / "logits").mkdir(parents=True, exist_ok=True)
        np.save(x / "keep.npy", rng.random(N) < 0.5 if keep is None or e else keep)
        np.save(x / "logits" / f"{1:010d}.npy", rng.normal(size=(N, 1, 2, 3)) if z is None or e else z)


@pytest.mark.parametrize("keep", [np.full(N, 0.3), np.full(N, 2), np.ones(N, np.complex128), np.full(N, np.nan)])
def test_lira_keep_must_be_flags(tmp_path: Path, keep: np.ndarray) -> None:
    _lira(tmp_path, keep=keep)
    with pytest.raises(ImportFileError, match=r"experiment-0_2/keep\.npy"):
        importers.read_lira_experiments(tmp_path)


def test_lira_keep_0_1_floats_are_flags(tmp_path: Path) -> None:
    keep = np.array([1.0, 0, 1, 0, 1, 1])
    _lira(tmp_path, keep=keep)
    masks, _ = importers.read_lira_experiments(tmp_path)
    np.testing.assert_array_equal(masks.unpack()[0], keep.astype(bool))


@pytest.mark.parametrize("labels", [np.array([0, 1.5, 2, 0, 1, 2]), np.array([0, np.nan, 2, 0, 1, 2])])
def test_lira_float_labels_must_be_integral(tmp_path: Path, labels: np.ndarray) -> None:
    _lira(tmp_path, labels=labels)
    with pytest.raises(ImportFileError, match=r"y_train\.npy.*integer labels"):
        importers.read_lira_experiments(tmp_path)
    with pytest.raises(ValueError, match="labels: expected integer labels"):
        importers.read_lira_experiments(tmp_path, labels=labels)


def test_lira_integral_float_labels_are_read(tmp_path: Path) -> None:
    _lira(tmp_path, labels=np.array([0.0, 1, 2, 0, 1, 2]))
    assert importers.read_lira_experiments(tmp_path)[1].shape == (2, N, 2)


def test_lira_labels_beyond_the_classes(tmp_path: Path) -> None:
    _lira(tmp_path, labels=np.array([0, 1, 7, 0, 1, 2]))
    with pytest.raises(ImportFileError, match=r"logits/0000000001\.npy"):
        importers.read_lira_experiments(tmp_path)


@pytest.mark.parametrize(
    "z",
    [
        np.ones((N, 1, 2, 3), np.complex128),
        np.full((N, 1, 2, 3), np.nan),
        np.ones((N, 2, 3)),  # no singleton axis
        np.ones((N, 1, 2, 3), np.int64),
    ],
)
def test_lira_bad_logits(tmp_path: Path, z: np.ndarray) -> None:
    _lira(tmp_path, z=z)
    with pytest.raises(ImportFileError, match=r"experiment-0_2/logits"):
        importers.read_lira_experiments(tmp_path)


# ----------------------------------------------------------------------- TRAK


def _trak(d: Path, s: np.ndarray, meta: str | None = None) -> Path:
    (d / "scores").mkdir(parents=True, exist_ok=True)
    np.save(d / "scores" / "x.npy", s)
    (d / "scores" / "x.npy").rename(d / "scores" / "x.mmap")
    if meta is not None:
        (d / "experiments.json").write_text(meta)
    return d


@pytest.mark.parametrize("meta", ['{"x": {"num_targets": 3', '["x"]', '{"x": 3}', '{"x": {"num_targets": "3"}}'])
def test_trak_malformed_experiments_json(tmp_path: Path, meta: str) -> None:
    _trak(tmp_path, np.ones((N, T), np.float32), meta)
    with pytest.raises(ImportFileError, match="experiments.json"):
        importers.read_trak_scores(tmp_path, "x")


@pytest.mark.parametrize(
    ("s", "what"),
    [(np.full((N, T), 1e40), "float32"), (np.ones((N, T), np.complex64), "complex"),
     (np.full((N, T), np.inf), "finite"), (np.ones(N), "shape")],
)  # fmt: skip
def test_trak_bad_scores(tmp_path: Path, s: np.ndarray, what: str) -> None:
    _trak(tmp_path, s)
    with pytest.raises(ImportFileError, match=rf"x\.mmap.*{what}"):
        importers.read_trak_scores(tmp_path, "x")


# ----------------------------------------------------------------------- dattri


@pytest.mark.parametrize(
    ("s", "err", "what"),
    [(np.full((N, T), 1e40), ValueError, "float32"), (np.ones((N, T), np.complex128), TypeError, "complex"),
     (np.full((N, T), np.nan), ValueError, "finite"), (np.ones(N), ValueError, "shape")],
)  # fmt: skip
def test_dattri_bad_scores(tmp_path: Path, s: np.ndarray, err: type[Exception], what: str) -> None:
    with pytest.raises(err, match=rf"scores: .*{what}"):
        importers.read_dattri_scores(s)
    np.save(tmp_path / "s.npy", s)
    with pytest.raises(ImportFileError, match=rf"s\.npy: .*{what}"):
        importers.read_dattri_scores(tmp_path / "s.npy")


def test_dattri_torch_files(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    p = tmp_path / "s.pt"
    torch.save(torch.ones((N, T), dtype=torch.complex64), p)
    with pytest.raises(ImportFileError, match=r"s\.pt: .*complex"):
        importers.read_dattri_scores(p)
    torch.save(torch.full((N, T), 1e40, dtype=torch.float64), p)
    with pytest.raises(ImportFileError, match=r"s\.pt: .*float32"):
        importers.read_dattri_scores(p)
    torch.save({"scores": torch.ones(N, T)}, p)
    with pytest.raises(ImportFileError, match=r"s\.pt: expected a torch.save of a tensor, got dict"):
        importers.read_dattri_scores(p)
    torch.save(torch.ones(N, T), p)
    raw = p.read_bytes()
    for bad in (raw[: len(raw) // 2], b"not a torch file", b""):
        p.write_bytes(bad)
        with pytest.raises(ImportFileError, match=r"s\.pt: expected a torch.save of a tensor"):
            importers.read_dattri_scores(p)
    torch.save(torch.ones(N, T, dtype=torch.float64) * 2, p)
    np.testing.assert_array_equal(importers.read_dattri_scores(p), np.full((T, N), 2, np.float32))


# ----------------------------------------------------------------------- Kronfluence


def _st(path: Path, header: object, raw: bytes, size: int | None = None) -> Path:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes((len(h) if size is None else size).to_bytes(8, "little") + h + raw)
    return path


def _info(
    dtype: str = "F32", shape: object = (T, N), offs: object = None, nbytes: int = T * N * 4
) -> dict[str, object]:
    return {"all_modules": {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape,
                            "data_offsets": [0, nbytes] if offs is None else offs}}  # fmt: skip


def test_kronfluence_huge_declared_header_size(tmp_path: Path) -> None:
    p = _st(tmp_path / "k.safetensors", _info(), np.ones(T * N, np.float32).tobytes(), size=2**62)
    with pytest.raises(ImportFileError, match=r"k\.safetensors: the header declares 4611686018427387904 bytes"):
        importers.read_kronfluence_scores(p)


def test_kronfluence_huge_declared_data(tmp_path: Path) -> None:
    big = 2**31
    p = _st(tmp_path / "k.safetensors", _info(shape=(big, big), offs=[0, big * big * 4]), b"\0" * 16)
    with pytest.raises(ImportFileError, match=r"k\.safetensors: all_modules: data ends at byte"):
        importers.read_kronfluence_scores(p)


@pytest.mark.parametrize(
    "header",
    [
        b'{"all_modules": {"dtype": "F32"',  # truncated JSON
        b"[1, 2]",
        {"all_modules": 3},
        {"all_modules": {"dtype": "F32", "shape": [T, N]}},  # no data_offsets
        _info(dtype="C64"),
        _info(dtype="I64", nbytes=T * N * 8),
        _info(shape=[T * N]),
        _info(shape=[T, "N"]),
        _info(offs=[0, 7]),  # does not match the shape: no "cannot reshape"
        _info(offs=[8, 4]),
        {"fc1": _info()["all_modules"]},
    ],
)
def test_kronfluence_malformed_header(tmp_path: Path, header: object) -> None:
    p = _st(tmp_path / "k.safetensors", header, np.ones(T * N, np.float32).tobytes())
    with pytest.raises(ImportFileError, match=r"k\.safetensors: "):
        importers.read_kronfluence_scores(p)


@pytest.mark.parametrize("content", [b"", b"\x05\x00", (10).to_bytes(8, "little") + b"{}"])
def test_kronfluence_short_files(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "k.safetensors").write_bytes(content)
    with pytest.raises(ImportFileError, match=r"k\.safetensors: "):
        importers.read_kronfluence_scores(tmp_path / "k.safetensors")


def test_kronfluence_values_beyond_float32(tmp_path: Path) -> None:
    a = np.ones((T, N))
    a[1, 2] = -1e40
    p = _st(tmp_path / "k.safetensors", _info("F64", nbytes=a.nbytes), a.tobytes())
    with pytest.raises(ImportFileError, match=r"k\.safetensors: values up to 1e\+40 .*float32"):
        importers.read_kronfluence_scores(p)
    a[1, 2] = -1e30
    p = _st(tmp_path / "k.safetensors", _info("F64", nbytes=a.nbytes), a.tobytes())
    np.testing.assert_array_equal(importers.read_kronfluence_scores(p), a.astype(np.float32))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), cut=st.integers(0, 400))
def test_kronfluence_any_bytes_read_or_refused(tmp_path: Path, data: bytes, cut: int) -> None:
    """Random bytes, or a valid file cut anywhere: a (T, N) float32 array or an ImportFileError."""
    good = tmp_path / "good.safetensors"
    _st(good, _info(), np.ones(T * N, np.float32).tobytes())
    for content in (data, good.read_bytes()[:cut], good.read_bytes()[:cut] + data):
        p = tmp_path / "k.safetensors"
        p.write_bytes(content)
        try:
            out = importers.read_kronfluence_scores(p)
        except ImportFileError as exc:
            assert "k.safetensors" in str(exc)
        else:
            assert out.dtype == np.float32 and out.ndim == 2 and np.isfinite(out).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(v=st.floats(allow_nan=True, allow_infinity=True))
def test_float64_values_fit_float32_or_are_refused(tmp_path: Path, v: float) -> None:
    s = np.full((N, T), v)
    try:
        out = importers.read_dattri_scores(s)
    except ValueError as exc:
        assert "scores:" in str(exc)
        with np.errstate(over="ignore"):
            assert not np.isfinite(np.float32(v))
    else:
        assert np.isfinite(out).all() and abs(v) <= float(np.finfo(np.float32).max) * (1 + 2**-24)
