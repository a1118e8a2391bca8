"""ResMem on real data: base MLP vs base + ResMem test accuracy, several widths and seeds.

``python benches/resmem_accuracy.py [--dataset digits|modular]`` (``--quick``: fewer
seeds and epochs). Default dataset:
scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes, no download),
standardised, a fixed stratified 70/30 train/test split. For each base width and seed:

1. split the training part 80/20 into fit / validation (seeded);
2. train a small torch MLP ``64 -> w -> w -> 10`` (ReLU, Adam, full batch) on the fit part;
3. extract penultimate-layer embeddings and logits with :func:`memscore.extract_embeddings`
   (ResMem searches either these embeddings, as in the paper, or the raw input features);
4. pick ``k``, ``sigma`` and ``normalize`` on the validation part with
   :func:`memscore.tune_resmem` (``k = 0``, the base model, is one of the candidates);
5. fit :class:`memscore.ResMem` on the fit part and score base vs ResMem on the test part.

Other datasets plug in through :func:`evaluate`, which takes ``(X_train, y_train, X_test,
y_test)`` arrays (features as float, labels 0..C-1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import machine, table  # noqa: E402

import memscore  # noqa: E402


def train_mlp(x: np.ndarray, y: np.ndarray, width: int, classes: int, *, seed: int, epochs: int) -> Any:
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, classes),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return model


def evaluate(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    widths: tuple[int, ...] = (2, 4, 8, 32),
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    epochs: int = 200,
    val_fraction: float = 0.2,
    normalize_options: tuple[bool, ...] = (True, False),
    embeddings: tuple[str, ...] = ("penultimate", "input"),
) -> list[dict[str, Any]]:
    """Base vs ResMem test accuracy for every (width, seed, embedding): one dict per run.

    ``embeddings``: where ResMem's neighbours are searched: ``"penultimate"`` (the base
    model's own penultimate layer, the paper's choice) and/or ``"input"`` (the raw
    features, a fixed embedding independent of the base model).
    """
    classes = int(max(y_train.max(), y_test.max())) + 1
    out = []
    for width in widths:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            perm = rng.permutation(len(x_train))
            n_val = int(round(val_fraction * len(x_train)))
            val, fit = perm[:n_val], perm[n_val:]
            model = train_mlp(x_train[fit], y_train[fit], width, classes, seed=seed, epochs=epochs)
            pen_fit, z_fit = memscore.extract_embeddings(model, x_train[fit].astype(np.float32))
            pen_val, z_val = memscore.extract_embeddings(model, x_train[val].astype(np.float32))
            pen_test, z_test = memscore.extract_embeddings(model, x_test.astype(np.float32))
            base_acc = float((z_test.argmax(1) == y_test).mean())
            for emb in embeddings:
                if emb == "penultimate":
                    e_fit, e_val, e_test = pen_fit, pen_val, pen_test
                elif emb == "input":
                    e_fit, e_val, e_test = (a.astype(np.float32) for a in (x_train[fit], x_train[val], x_test))
                else:
                    raise ValueError(f"embeddings: expected 'penultimate' or 'input', got {emb!r}")
                # Tune k and sigma on the validation part, with and without L2-normalised
                # embeddings; the best validation accuracy wins (ties: the first option).
                best, norm = None, True
                for nz in normalize_options:
                    b, _ = memscore.tune_resmem(
                        e_fit,
                        y_train[fit],
                        z_fit,
                        e_val,
                        y_train[val],
                        z_val,
                        ks=(0, 1, 3, 5, 10, 20, 50),
                        normalize=nz,
                    )
                    if best is None or b["accuracy"] > best["accuracy"]:
                        best, norm = b, nz
                assert best is not None
                rm = memscore.ResMem(k=best["k"], sigma=best["sigma"], normalize=norm).fit(e_fit, y_train[fit], z_fit)
                out.append(
                    {
                        "width": width,
                        "embedding": emb,
                        "params": sum(p.numel() for p in model.parameters()),
                        "seed": seed,
                        "base_fit_acc": float((z_fit.argmax(1) == y_train[fit]).mean()),
                        "base_test_acc": base_acc,
                        "resmem_test_acc": rm.score(e_test, z_test, y_test),
                        "k": best["k"],
                        "sigma": best["sigma"],
                    }
                )
    return out


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for width, emb in sorted({(r["width"], r["embedding"]) for r in runs}):
        rs = [r for r in runs if r["width"] == width and r["embedding"] == emb]
        b = [100 * r["base_test_acc"] for r in rs]
        m = [100 * r["resmem_test_acc"] for r in rs]
        g = [x - y for x, y in zip(m, b, strict=True)]
        sd = statistics.stdev if len(rs) > 1 else (lambda v: 0.0)
        rows.append(
            {
                "base width": str(width),
                "ResMem embedding": emb,
                "params": f"{rs[0]['params']:,}",
                "base train acc %": f"{100 * statistics.mean(r['base_fit_acc'] for r in rs):.1f}",
                "base test acc %": f"{statistics.mean(b):.2f} ± {sd(b):.2f}",
                "ResMem test acc %": f"{statistics.mean(m):.2f} ± {sd(m):.2f}",
                "gain (points)": f"{statistics.mean(g):+.2f} (min {min(g):+.2f}, max {max(g):+.2f})",
                "k chosen": ", ".join(str(r["k"]) for r in rs),
            }
        )
    return rows


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    return (x_tr - mu) / sd, y_tr, (x_te - mu) / sd, y_te


def modular() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Modular addition mod 97 (issue 3's dataset), clean labels, half the pairs for training."""
    from memscore.datasets import modular_arithmetic

    d = modular_arithmetic(p=97, op="add", train_fraction=0.5, corrupt=0.0, seed=0)
    return d.x_train, d.y_train, d.x_test, d.y_test


DATASETS = {"digits": digits, "modular": modular}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 seeds, 2 widths, fewer epochs")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8, 32])
    ap.add_argument("--epochs", type=int, default=200)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # tiny models: more threads only spin
    seeds = tuple(range(2 if a.quick else a.seeds))
    widths = (2, 32) if a.quick else tuple(a.widths)
    epochs = 100 if a.quick else a.epochs
    x_tr, y_tr, x_te, y_te = DATASETS[a.dataset]()
    t0 = time.perf_counter()
    runs = evaluate(x_tr, y_tr, x_te, y_te, widths=widths, seeds=seeds, epochs=epochs)
    print(
        f"machine: {machine()}; dataset: {a.dataset} (train {len(x_tr)}, test {len(x_te)}); "
        f"seeds {list(seeds)}; {epochs} epochs; {time.perf_counter() - t0:.0f} s\n"
    )
    print(
        table(
            summarize(runs),
            [
                "base width",
                "params",
                "ResMem embedding",
                "base train acc %",
                "base test acc %",
                "ResMem test acc %",
                "gain (points)",
                "k chosen",
            ],
        )
    )


if __name__ == "__main__":
    main()
