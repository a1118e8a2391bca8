"""Damaged and hostile dataset files, written in the real on-disk formats (CIFAR's pickled
batches, SVHN's MATLAB files, MNIST's idx files): each is refused with a DatasetError naming
the file and the field, and no file runs code."""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest

import memscore
from memscore import DatasetError
from memscore.datasets import image_dataset

# -- writers -----------------------------------------------------------------------------


def cifar_folder(root, hundred=False):
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_cifar(root, hundred=False, n=3, **override):
    """A miniature CIFAR-10 (or -100); ``override`` maps a file name to the dict (or raw bytes) it holds."""
    folder = cifar_folder(root, hundred)
    files = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    key = b"fine_labels" if hundred else b"labels"
    rng = np.random.default_rng(0)
    for f in files:
        content = override.get(f, {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: [1] * n})
        if isinstance(content, bytes):
            (folder / f).write_bytes(content)
        else:
            with open(folder / f, "wb") as fh:
                pickle.dump(content, fh)
    return folder


def batch(n_images=3, labels=None, key=b"labels"):
    x = np.zeros((n_images, 3072), np.uint8)
    return {b"data": x, key: [0] * n_images if labels is None else labels}


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the real CIFAR files hold it: Python 2's protocol 2, str keys (bytes under
    encoding="bytes"), the array rebuilt by numpy.core.multiarray._reconstruct."""

    def s(b: bytes) -> bytes:  # SHORT_BINSTRING / BINSTRING: a Python 2 str
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b

    def i(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    dtype = (
        b"cnumpy\ndtype\n"
        + s(b"u1")
        + i(0)
        + i(1)
        + b"\x87R"
        + b"("
        + i(3)
        + s(b"|")
        + b"NNN"
        + i(-1)
        + i(-1)
        + i(0)
        + b"tb"
    )
    shape = b"(" + b"".join(i(d) for d in data.shape) + b"t"
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"(" + i(0) + b"t" + s(b"b") + b"\x87R"
        + b"(" + i(1) + shape + dtype + b"\x89" + s(data.tobytes()) + b"tb"
    )  # fmt: skip
    items = (
        s(b"batch_label") + s(b"training batch 1 of 5") + s(b"labels") + b"](" + b"".join(i(v) for v in labels) + b"e"
    )
    items += (
        s(b"data") + array + s(b"filenames") + b"](" + b"".join(s(b"f%d.png" % k) for k in range(len(labels))) + b"e"
    )
    return b"\x80\x02}(" + items + b"u."


def write_svhn(root, train=None, test=None):
    savemat = pytest.importorskip("scipy.io").savemat
    for split, content in (("train", train), ("test", test)):
        if content is None:
            content = {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[10], [3]], np.uint8)}
        if isinstance(content, bytes):
            (root / f"{split}_32x32.mat").write_bytes(content)
        else:
            savemat(root / f"{split}_32x32.mat", content)


def idx(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.astype(np.uint8).tobytes()


def write_mnist(root, n=4, n_labels=None, labels=None, images_bytes=None):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        x = np.zeros((n, 28, 28), np.uint8)
        y = np.arange(n if n_labels is None else n_labels) % 10 if labels is None else np.asarray(labels)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx(x) if images_bytes is None else images_bytes)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(y))
    return raw


# -- the error itself --------------------------------------------------------------------


def test_dataset_error_is_a_memscore_error():
    assert issubclass(DatasetError, memscore.MemscoreError)
    assert "DatasetError" in memscore.__all__ and memscore.errors.DatasetError is DatasetError


# -- CIFAR: the real format reads; every defect is named ------------------------------------


def test_a_python2_cifar_batch_as_the_real_files_hold_it_reads(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (2, 3072), dtype=np.uint8)
    real = py2_batch(data, [3, 9])
    write_cifar(tmp_path, **{f"data_batch_{k}": real for k in range(1, 6)}, test_batch=real)
    d = image_dataset("cifar10", tmp_path)
    np.testing.assert_array_equal(d.x_test, data.reshape(2, 3, 32, 32))
    np.testing.assert_array_equal(d.y_test, [3, 9])
    assert d.n_train == 10


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_cifar_batches_written_by_python3_at_any_protocol_read(tmp_path, protocol):
    folder = write_cifar(tmp_path)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(batch(2, [4, 5]), fh, protocol=protocol)
    assert image_dataset("cifar10", tmp_path).y_test.tolist() == [4, 5]


class RunsCode:
    """Unpickling this calls ``fn(arg)``: what a crafted batch would do."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "builtins.exec in the labels"])
def test_a_crafted_cifar_pickle_runs_nothing(tmp_path, how):
    marker = tmp_path / "marker"
    if how == "os.system":
        evil = RunsCode(os.system, f"touch {marker}")
    else:
        fn = eval if how == "builtins.eval" else exec
        code = f"open({str(marker)!r}, 'w').close()"
        evil = RunsCode(fn, code)
    content = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [evil]} if "labels" in how else evil
    folder = write_cifar(tmp_path, data_batch_1=pickle.dumps(content))
    with pytest.raises(DatasetError, match="refused, nothing was run") as e:
        image_dataset("cifar10", tmp_path)
    assert str(folder / "data_batch_1") in str(e.value)
    assert ("system" if how == "os.system" else how.split()[0].split(".")[1]) in str(e.value)
    assert not marker.exists()


def test_any_other_class_in_a_batch_is_refused(tmp_path):
    import collections

    write_cifar(tmp_path, test_batch=pickle.dumps(collections.OrderedDict(batch(1))))
    with pytest.raises(DatasetError, match=r"test_batch: pickle: .*collections\.OrderedDict"):
        image_dataset("cifar10", tmp_path)


@pytest.mark.parametrize(
    "content, match",
    [
        (batch(5, [0, 1, 2]), r"data_batch_1: labels: expected 5 labels \(one per image of data\), got 3"),
        (batch(2, [0, 1, 2]), r"data_batch_1: labels: expected 2 labels .*got 3"),
        (batch(3, [0, 10, 1]), r"data_batch_1: labels: expected classes in 0\.\.9, got 10 at index 1"),
        (batch(3, [0, -1, 1]), r"data_batch_1: labels: expected classes in 0\.\.9, got -1 at index 1"),
        (batch(3, [0, 2.9, 1]), r"data_batch_1: labels: expected integer labels, got 2\.9 \(float\) at index 1"),
        (batch(3, [0, 2.0, 1]), r"expected integer labels, got 2\.0 \(float\) at index 1"),
        (batch(2, [0, "cat"]), r"data_batch_1: labels: expected integer labels, got 'cat' \(str\) at index 1"),
        (batch(2, [True, 0]), r"expected integer labels, got True \(bool\) at index 0"),
        (batch(2, [0, 2**70]), r"labels: expected integer labels below 2\*\*63"),
        (batch(2, "01"), r"labels: expected a list or array of integer labels, got a str"),
        (batch(2, np.array([0, "cat"], dtype=object)), r"labels: expected integer labels, got 'cat' \(str\) at index 1"),
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, r"data: expected shape \(n, 3072\), got \(2, 3000\)"),
        ({b"data": np.zeros((2, 3072), np.int64), b"labels": [0, 1]}, r"data: expected uint8 images, got dtype int64"),
        ({b"data": [[0] * 3072], b"labels": [0]}, r"data: expected a numpy array of images, got a list"),
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, r"data: expected at least one image, got none"),
        ({b"labels": [0]}, r"data_batch_1: expected the keys b'data' and b'labels', got b'labels'"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}, r"expected the keys b'data' and b'labels', got 'data', 'labels'"),
        ([1, 2], r"data_batch_1: expected a dict \(a CIFAR python batch\), got a list"),
    ],
)  # fmt: skip
def test_cifar10_batch_defects_are_named(tmp_path, content, match):
    folder = write_cifar(tmp_path, data_batch_1=content)
    with pytest.raises(DatasetError, match=match) as e:
        image_dataset("cifar10", tmp_path)
    assert str(folder / "data_batch_1") in str(e.value)


def test_cifar100_labels_are_checked_against_its_100_classes(tmp_path):
    write_cifar(tmp_path, hundred=True, test=batch(2, [99, 100], key=b"fine_labels"))
    with pytest.raises(DatasetError, match=r"test: fine_labels: expected classes in 0\.\.99, got 100 at index 1"):
        image_dataset("cifar100", tmp_path)
    write_cifar(tmp_path, hundred=True, test=batch(2, [99, 0], key=b"fine_labels"))
    assert image_dataset("cifar100", tmp_path).y_test.tolist() == [99, 0]


@pytest.mark.parametrize("cut", [0, 1, 40, -10])
def test_truncated_or_empty_cifar_batches_are_named(tmp_path, cut):
    whole = pickle.dumps(batch(3))
    write_cifar(tmp_path, data_batch_2=whole[:cut] if cut >= 0 else whole[:cut])
    with pytest.raises(
        DatasetError, match=r"data_batch_2: expected a CIFAR python batch \(a pickle\), got a file pickle cannot read"
    ):
        image_dataset("cifar10", tmp_path)


def test_not_a_pickle_at_all(tmp_path):
    write_cifar(tmp_path, data_batch_3=b"PNG\x89 this is an image, not a batch")
    with pytest.raises(DatasetError, match=r"data_batch_3: expected a CIFAR python batch"):
        image_dataset("cifar10", tmp_path)


def test_a_directory_instead_of_a_batch_file(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "test_batch").unlink()
    (folder / "test_batch").mkdir()
    with pytest.raises(DatasetError, match=r"test_batch: expected a file, got a directory"):
        image_dataset("cifar10", tmp_path)


def test_a_missing_batch_is_named(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_4: no such file.*pass download=True"):
        image_dataset("cifar10", tmp_path)


# -- SVHN ----------------------------------------------------------------------------------


def svhn(n_images=2, y=None):
    return {"X": np.zeros((32, 32, 3, n_images), np.uint8), "y": np.array([[1]] * n_images if y is None else y)}


def test_svhn_whole_double_labels_read_as_matlab_writes_them(tmp_path):
    write_svhn(tmp_path, train=svhn(3, np.array([[10.0], [1.0], [9.0]])))
    assert image_dataset("svhn", tmp_path).y_train.tolist() == [0, 1, 9]


@pytest.mark.parametrize(
    "content, match",
    [
        (svhn(3, [[1], [2]]), r"train_32x32\.mat: y: expected 3 labels \(one per image of X\), got 2"),
        (svhn(2, [[1], [11]]), r"train_32x32\.mat: y: expected classes in 1\.\.10, got 11 at index 1"),
        (svhn(2, [[0], [1]]), r"y: expected classes in 1\.\.10, got 0 at index 0"),
        (svhn(2, [[-3], [1]]), r"y: expected classes in 1\.\.10, got -3 at index 0"),
        (svhn(2, [[2.9], [1.0]]), r"train_32x32\.mat: y: expected integer labels, got floats, e\.g\. 2\.9 at index 0"),
        (svhn(2, [[1, 2], [3, 4]]), r"y: expected one label per image \(shape \(n,\)\), got shape \(2, 2\)"),
        ({"X": np.zeros((3, 32, 32, 2), np.uint8), "y": [[1], [2]]}, r"X: expected shape \(32, 32, 3, n\), got \(3, 32, 32, 2\)"),
        ({"X": np.zeros((32, 32, 3), np.uint8), "y": [[1]]}, r"X: expected shape \(32, 32, 3, n\), got \(32, 32, 3\)"),
        ({"X": np.zeros((32, 32, 3, 1)), "y": [[1]]}, r"X: expected uint8 images, got dtype float64"),
        ({"images": np.zeros((32, 32, 3, 1), np.uint8), "y": [[1]]}, r"train_32x32\.mat: expected the variables X and y, got images, y"),
    ],
)  # fmt: skip
def test_svhn_defects_are_named(tmp_path, content, match):
    write_svhn(tmp_path, train=content)
    with pytest.raises(DatasetError, match=match) as e:
        image_dataset("svhn", tmp_path)
    assert str(tmp_path / "train_32x32.mat") in str(e.value)


@pytest.mark.parametrize("cut", [0, 100, -50])
def test_truncated_svhn_files_are_named(tmp_path, cut):
    write_svhn(tmp_path)
    whole = (tmp_path / "test_32x32.mat").read_bytes()
    (tmp_path / "test_32x32.mat").write_bytes(whole[:cut])
    with pytest.raises(DatasetError, match=r"test_32x32\.mat: expected a MATLAB \.mat file \(SVHN's format\)"):
        image_dataset("svhn", tmp_path)


def test_svhn_directory_and_missing_file(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_32x32\.mat: no such file.*pass download=True"):
        image_dataset("svhn", tmp_path)
    (tmp_path / "test_32x32.mat").mkdir()
    with pytest.raises(DatasetError, match=r"test_32x32\.mat: expected a file, got a directory"):
        image_dataset("svhn", tmp_path)


# -- MNIST idx files -----------------------------------------------------------------------


def test_mnist_idx_defects_are_named(tmp_path):
    raw = write_mnist(tmp_path, n=4, n_labels=3)
    with pytest.raises(
        DatasetError,
        match=r"train-labels-idx1-ubyte: labels: expected 4 labels \(one per image of images in .*train-images-idx3-ubyte\), got 3",
    ):
        image_dataset("mnist", tmp_path)
    write_mnist(tmp_path, n=2, labels=[3, 10])
    with pytest.raises(
        DatasetError, match=r"train-labels-idx1-ubyte: labels: expected classes in 0\.\.9, got 10 at index 1"
    ):
        image_dataset("mnist", tmp_path)
    whole = idx(np.zeros((2, 28, 28), np.uint8))
    write_mnist(tmp_path, n=2, images_bytes=whole[:-5])
    with pytest.raises(
        DatasetError, match=r"train-images-idx3-ubyte: data: expected 1568 bytes for shape \(2, 28, 28\), got 1563"
    ):
        image_dataset("mnist", tmp_path)
    write_mnist(tmp_path, n=2, images_bytes=whole[:6])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: header: expected 16 bytes, got 6"):
        image_dataset("mnist", tmp_path)
    write_mnist(tmp_path, n=2, images_bytes=b"\x1f\x8b\x08\x00gzip")
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: header: expected an idx file"):
        image_dataset("mnist", tmp_path)
    write_mnist(tmp_path, n=2, images_bytes=idx(np.zeros((2, 28), np.uint8)))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: rank: expected 3, got 2"):
        image_dataset("mnist", tmp_path)
    write_mnist(tmp_path, n=2, images_bytes=idx(np.zeros((2, 32, 32), np.uint8)))
    with pytest.raises(DatasetError, match=r"images: expected shape \(n, 28, 28\), got \(2, 32, 32\)"):
        image_dataset("mnist", tmp_path)
    write_mnist(tmp_path, n=2)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").mkdir()
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte: expected a file, got a directory"):
        image_dataset("mnist", tmp_path)


# -- download=True: downloads, or says that it could not -----------------------------------


def test_download_true_downloads_svhn_when_its_files_are_missing(tmp_path, monkeypatch):
    utils = pytest.importorskip("torchvision.datasets.utils")
    fetched = []

    def fake_download_url(url, root, filename, md5):
        fetched.append(filename)
        savemat = pytest.importorskip("scipy.io").savemat
        savemat(os.path.join(root, filename), svhn(2, [[10], [4]]))

    monkeypatch.setattr(utils, "download_url", fake_download_url)
    d = image_dataset("svhn", tmp_path, download=True)
    assert fetched == ["train_32x32.mat", "test_32x32.mat"] and d.y_train.tolist() == [0, 4]


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "mnist", "fashion-mnist"])
def test_a_failed_download_says_so(tmp_path, monkeypatch, name):
    utils = pytest.importorskip("torchvision.datasets.utils")
    tvd = pytest.importorskip("torchvision.datasets")

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(utils, "download_url", offline)
    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    monkeypatch.setattr(tvd.MNIST, "download", offline)
    with pytest.raises(
        FileNotFoundError,
        match=rf"{name}: download=True could not download into .*OSError: no network.*files are still missing",
    ):
        image_dataset(name, tmp_path, download=True)


def test_a_download_that_leaves_a_file_missing_says_which(tmp_path, monkeypatch):
    utils = pytest.importorskip("torchvision.datasets.utils")
    monkeypatch.setattr(utils, "download_url", lambda *a, **k: None)
    with pytest.raises(
        FileNotFoundError, match=r"download=True fetched .* but one is still missing .*train_32x32\.mat: no such file"
    ):
        image_dataset("svhn", tmp_path, download=True)


def test_download_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match="download: expected True or False, got 'yes'"):
        image_dataset("svhn", tmp_path, download="yes")


# -- no loader in the package can run code from a file ---------------------------------------


def test_every_loader_in_the_package_refuses_code():
    """Each np.load says allow_pickle=False, each torch.load weights_only=True, nothing calls
    pickle.load(s) or builds a plain Unpickler, and no model is loaded with remote code."""
    import ast
    from pathlib import Path

    package = Path(memscore.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            kw = {k.arg: k.value for k in node.keywords}

            def const(key, kw=kw):
                return kw[key].value if isinstance(kw.get(key), ast.Constant) else None

            where = f"{path.relative_to(package)}:{node.lineno}"
            if name in ("np.load", "numpy.load") and const("allow_pickle") is not False:
                found.append(f"{where}: np.load without allow_pickle=False")
            if name == "torch.load" and const("weights_only") is not True:
                found.append(f"{where}: torch.load without weights_only=True")
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "cloudpickle.load", "cloudpickle.loads"):
                found.append(f"{where}: {name}")
            if const("trust_remote_code") is True or const("weights_only") is False:
                found.append(f"{where}: a loader that may run code")
    assert found == []
