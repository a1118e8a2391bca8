"""Datamodels (memscore.datamodels) against scikit-learn's Lasso per target, and the LDS
(memscore.lds) against scipy's Spearman."""

from __future__ import annotations

import numpy as np
import pytest

import memscore
from memscore.reference import datamodels as ref
from memscore.runs.bits import PackedBits

pytest.importorskip("sklearn")


def _problem(seed: int, runs: int = 240, n: int = 40, t: int = 37, noise: float = 0.3):
    """Random masks, a planted 3-sparse model per target plus noise, and validation runs."""
    rng = np.random.default_rng(seed)
    m = rng.random((runs + 80, n)) < 0.5
    w = np.zeros((n, t))
    for k in range(t):
        w[rng.choice(n, 3, replace=False), k] = rng.normal(scale=2.0, size=3)
    y = m @ w + 1.5 + noise * rng.normal(size=(runs + 80, t))
    return m[:runs], y[:runs], m[runs:], y[runs:], w.T


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_lambda_matches_sklearn(seed: int) -> None:
    m, y, _, _, _ = _problem(seed)
    lam = np.random.default_rng(seed).uniform(0.005, 0.1, y.shape[1])
    fit = memscore.datamodels(m, y, lam=lam, tol=1e-6)
    w, b, _ = ref.datamodels_lasso(m, y, lam=lam, tol=1e-10, max_iter=100_000)
    assert fit.weights.dtype == np.float32 and fit.weights.shape == (y.shape[1], m.shape[1])
    np.testing.assert_allclose(fit.weights, w, atol=2e-4)
    np.testing.assert_allclose(fit.bias, b, atol=2e-4)
    np.testing.assert_allclose(fit.lam, lam)
    np.testing.assert_allclose(fit.lam_max, ref.lam_max(m, y), rtol=1e-5)


def test_path_with_validation_matches_sklearn() -> None:
    m, y, vm, vy, _ = _problem(2, t=9)
    fit = memscore.datamodels(m, y, val_masks=vm, val_outcomes=vy, n_lambdas=30, tol=1e-6, patience=None)
    w, b, lam = ref.datamodels_lasso(m, y, val_masks=vm, val_outcomes=vy, n_lambdas=30, tol=1e-10, max_iter=100_000)
    np.testing.assert_allclose(fit.lam, lam, rtol=1e-6)
    np.testing.assert_allclose(fit.weights, w, atol=2e-4)
    np.testing.assert_allclose(fit.bias, b, atol=2e-4)
    pred = fit.predict(vm)
    # Early stopping on the path keeps the same choice here (the held-out MSE has one minimum).
    early = memscore.datamodels(m, y, val_masks=vm, val_outcomes=vy, n_lambdas=30, tol=1e-6, patience=3)
    np.testing.assert_array_equal(early.lam, fit.lam)
    assert early.sweeps < fit.sweeps
    np.testing.assert_allclose(fit.val_mse, ((vy - pred) ** 2).mean(axis=0), rtol=1e-4)


def test_planted_sparse_model_is_recovered_with_intercept() -> None:
    m, y, vm, vy, w = _problem(3, runs=600, noise=0.05)
    fit = memscore.datamodels(m, y, val_masks=vm, val_outcomes=vy)
    np.testing.assert_allclose(fit.weights, w, atol=0.05)
    np.testing.assert_allclose(fit.bias, 1.5, atol=0.05)
    big = np.abs(w) > 0.2
    np.testing.assert_array_equal(np.sign(fit.weights[big]), np.sign(w[big]))
    assert (np.abs(fit.weights[w == 0]) < 0.05).all()


def test_held_out_split_and_packed_and_bool_inputs() -> None:
    m, y, _, _, _ = _problem(4, t=5)
    fit = memscore.datamodels(PackedBits.pack(m), y, n_lambdas=20, seed=1)
    assert np.isfinite(fit.val_mse).all() and (fit.lam <= fit.lam_max).all()
    again = memscore.datamodels(m, y, n_lambdas=20, seed=1)
    np.testing.assert_array_equal(fit.weights, again.weights)
    # The split is read from the one mask matrix by row index: the same fit as the copies.
    from memscore.runs.datamodels import split_rows

    keep, held = split_rows(m.shape[0], 0.1, 1)
    copies = memscore.datamodels(m[keep], y[keep], val_masks=m[held], val_outcomes=y[held], n_lambdas=20)
    np.testing.assert_array_equal(fit.weights, copies.weights)
    np.testing.assert_array_equal(fit.lam, copies.lam)
    correct = y > np.median(y, axis=0)
    a = memscore.datamodels(m, correct, lam=0.01)
    b = memscore.datamodels(m, correct.astype(np.float64), lam=0.01)
    np.testing.assert_array_equal(a.weights, b.weights)


def _small_problem(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A small well-posed problem of one target: masks of any density, a few planted
    weights, noise and offset at any scale (every fourth: 0/1 outcomes)."""
    rng = np.random.default_rng(seed)
    runs, n = int(rng.integers(20, 400)), int(rng.integers(2, 80))
    m = rng.random((runs, n)) < rng.uniform(0.1, 0.9)
    w = np.zeros(n)
    idx = rng.choice(n, size=min(n, int(rng.integers(1, 5))), replace=False)
    w[idx] = rng.normal(0, 1, len(idx))
    scale, noise = 10 ** rng.uniform(-3, 3), 10 ** rng.uniform(-4, 0.5)
    y = (m @ w + rng.normal(0, noise, runs) + rng.normal(0, 5)) * scale
    if seed % 4 == 1:
        y = (rng.random(runs) < 0.5).astype(float)
    return m, y[:, None]


# 116, 133, 141, 197, 249: λ = lam_max, where the f32 gradient of the top feature is within
# rounding of λ and its weight cycled between 0 and ~1e-9 until max_iter (issue 26).
@pytest.mark.parametrize("seed", [116, 133, 141, 197, 249, 0, 3, 6])
def test_every_lambda_of_the_path_converges(seed: int) -> None:
    import warnings

    m, y = _small_problem(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", memscore.ConvergenceWarning)
        fit = memscore.datamodels(m, y, n_lambdas=100, patience=None)
    assert fit.converged.shape == (1, 100) and fit.all_converged
    np.testing.assert_array_equal(fit.steps, [100])
    # as few sweeps as scikit-learn needs, not max_iter at some λ
    assert fit.sweeps < 100 * 50


def _lasso_objective(m: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: float, lam: float) -> float:
    r = y - m @ weights - bias
    return float(r @ r / (2 * len(r)) + lam * np.abs(weights).sum())


def test_fixed_lambda_objective_is_sklearns() -> None:
    """On the small problems, the objective at a fixed λ is scikit-learn's to its tol."""
    for seed in (116, 141, 7, 10):
        m, y = _small_problem(seed)
        probe = memscore.datamodels(m, y, lam=1e300, n_lambdas=1)
        for frac in (1.0, 0.9, 0.3, 0.01):
            lam = float(probe.lam_max[0] * frac)
            fit = memscore.datamodels(m, y, lam=lam, n_lambdas=20)
            assert fit.all_converged
            w, b, _ = ref.datamodels_lasso(m, y, lam=np.array([lam]), tol=1e-12, max_iter=100_000)

            yy = float(((y - y.mean()) ** 2).mean())
            ours = _lasso_objective(m, y[:, 0], fit.weights[0].astype(np.float64), fit.bias[0], lam)
            gap = ours - _lasso_objective(m, y[:, 0], w[0], b[0], lam)
            assert gap <= 1e-4 * yy, (seed, frac, gap / yy)


def test_a_lambda_cut_short_is_reported() -> None:
    m, y, _, _, _ = _problem(10, t=3)
    m[:, 1] = m[:, 0] ^ (np.arange(len(m)) % 17 == 0)  # two nearly equal features: slow
    with pytest.warns(memscore.ConvergenceWarning, match=r"max_iter=1 .*Datamodels.converged"):
        fit = memscore.datamodels(m, y, lam=np.full(3, 1e-3), n_lambdas=4, max_iter=1, tol=1e-6)
    assert fit.converged.shape == (3, 4) and not fit.all_converged
    # enough sweeps: every λ converges, and nothing is said
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", memscore.ConvergenceWarning)
        assert memscore.datamodels(m, y, lam=np.full(3, 1e-3), n_lambdas=4, tol=1e-6).all_converged


def test_steps_of_a_path_stopped_early() -> None:
    m, y, vm, vy, _ = _problem(2, t=9)
    fit = memscore.datamodels(m, y, val_masks=vm, val_outcomes=vy, n_lambdas=60, patience=3)
    assert fit.converged.shape == (9, 60) and fit.all_converged
    assert (fit.steps < 60).all() and (fit.steps >= 4).all()


def test_lam_at_lam_max_gives_zero_weights() -> None:
    m, y, _, _, _ = _problem(5, t=4)
    lmax = ref.lam_max(m, y)
    fit = memscore.datamodels(m, y, lam=lmax * (1 + 1e-6))
    assert not fit.weights.any()
    np.testing.assert_allclose(fit.bias, y.mean(axis=0))
    assert memscore.datamodels(m, y, lam=lmax * 0.9).weights.any(axis=1).all()


def test_one_run_and_constant_outcomes() -> None:
    m = np.array([[True, False, True]])
    fit = memscore.datamodels(m, np.array([[2.0, -1.0]]), lam=0.1)
    assert not fit.weights.any()
    np.testing.assert_array_equal(fit.bias, [2.0, -1.0])
    m, y, _, _, _ = _problem(6, t=3)
    y[:, 1] = 4.0
    fit = memscore.datamodels(m, y, lam=0.01)
    assert not fit.weights[1].any() and fit.bias[1] == 4.0 and fit.weights[0].any()


def test_bad_input() -> None:
    m, y, vm, vy, _ = _problem(7, t=3)
    bad = y.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        memscore.datamodels(m, bad, lam=0.1)
    with pytest.raises(ValueError, match="NaN"):
        memscore.datamodels(m, y, val_masks=vm, val_outcomes=np.where(vy > 100, vy, np.inf))
    for lam in (0.0, -1.0, [0.1, 0.0, 0.1], np.nan):
        with pytest.raises(ValueError, match="lam"):
            memscore.datamodels(m, y, lam=lam)
    with pytest.raises(ValueError, match="runs"):
        memscore.datamodels(m, y[:-1], lam=0.1)
    with pytest.raises(ValueError, match="lam"):
        memscore.datamodels(m, y, lam=[0.1, 0.2])
    with pytest.raises(ValueError, match="examples"):
        memscore.datamodels(m, y, val_masks=vm[:, :-1], val_outcomes=vy)
    with pytest.raises(ValueError, match="test examples"):
        memscore.datamodels(m, y, val_masks=vm, val_outcomes=vy[:, :2])
    with pytest.raises(ValueError, match="together"):
        memscore.datamodels(m, y, val_masks=vm)
    with pytest.raises(ValueError, match="two runs"):
        memscore.datamodels(m[:1], y[:1])
    with pytest.raises(TypeError):
        memscore.datamodels(m, y, lam="big")
    with pytest.raises(ValueError, match="n_lambdas"):
        memscore.datamodels(m, y, lam=0.1, n_lambdas=0)
    with pytest.raises(ValueError, match="masks"):
        memscore.datamodels(np.zeros((0, 4), bool), np.zeros((0, 2)), lam=0.1)


# ------------------------------------------------------------------------------ LDS


def test_lds_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(8)
    m = rng.random((25, 30)) < 0.5
    att = rng.integers(-2, 3, (6, 30)).astype(np.float64)  # integer sums: many ties
    y = np.round(m @ att.T + rng.normal(size=(25, 6)), 0)  # tied outcomes too
    got = memscore.lds(att, m, y)
    want = ref.lds(att, m, y)
    np.testing.assert_allclose(got.per_target, want, atol=1e-12)
    assert got.mean == pytest.approx(np.nanmean(want))
    assert got.ci[0] <= got.mean <= got.ci[1]
    assert got.n_subsets == 25


def test_lds_exact_linear_outcome_is_one_and_groups_average() -> None:
    rng = np.random.default_rng(9)
    m = rng.random((12, 20)) < 0.5
    w = rng.normal(size=(4, 20))
    assert memscore.lds(w, m, m @ w.T + 3.0).mean == pytest.approx(1.0)
    # Each subset trained twice: the noise cancels in the group mean.
    noise = rng.normal(size=(12, 4))
    reps = np.repeat(m, 2, axis=0)
    y = np.repeat(m @ w.T, 2, axis=0) + np.stack([noise, -noise], axis=1).reshape(24, 4)
    grouped = memscore.lds(w, reps, y, groups=np.repeat(np.arange(12), 2))
    assert grouped.mean == pytest.approx(1.0) and grouped.n_subsets == 12
    assert memscore.lds(w, reps, y).mean < 1.0


def test_lds_bad_input() -> None:
    rng = np.random.default_rng(10)
    m = rng.random((5, 8)) < 0.5
    y = rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match="attributions"):
        memscore.lds(np.zeros((3, 7)), m, y)
    with pytest.raises(ValueError, match="attributions"):
        memscore.lds(np.zeros((2, 8)), m, y)
    with pytest.raises(ValueError, match="at least 3"):
        memscore.lds(np.zeros((3, 8)), m[:2], y[:2])
    with pytest.raises(ValueError, match="at least 3"):
        memscore.lds(np.zeros((3, 8)), np.repeat(m[:2], 3, axis=0), np.zeros((6, 3)), groups=[0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="different subset"):
        memscore.lds(np.zeros((3, 8)), m, y, groups=[0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        memscore.lds(np.zeros((3, 8)), m, np.full((5, 3), np.nan))
    constant = memscore.lds(np.zeros((3, 8)), m, y)
    assert np.isnan(constant.per_target).all() and np.isnan(constant.mean)


# ------------------------------------------------------------------------ store, plans


def test_store_datamodels_split_and_lds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from memscore.train import SubsetPlan

    rng = np.random.default_rng(11)
    n, t = 16, 3
    w = np.zeros((t, n))
    w[:, :4] = rng.normal(scale=2.0, size=(t, 4))
    store = memscore.RunStore.create(tmp_path / "runs", n_train=n, n_test=t)
    for mask in SubsetPlan(n, 120, seed=0).masks:
        store.add_run(mask, test_phi=mask @ w.T + 0.1 * rng.normal(size=t))
    kept, held = store.split_runs(0.25, seed=3)
    assert len(held) == 30 and len(kept) == 90 and not set(kept) & set(held)
    assert sorted(kept + held) == store.run_ids()
    dm = store.datamodels(run_ids=kept, n_lambdas=20)
    idx = [store.run_ids().index(r) for r in kept]
    direct = memscore.datamodels(store.masks()[idx], store.outcomes("test", "phi")[idx], n_lambdas=20)
    np.testing.assert_array_equal(dm.weights, direct.weights)
    # Evaluation runs: 8 subsets x 3 seeds; identical masks are grouped by the store.
    plan = SubsetPlan(n, 8, seed=1, repeats=3)
    assert len(plan) == 24 and plan.groups.tolist() == np.repeat(np.arange(8), 3).tolist()
    assert (plan.masks[0] == plan.masks[2]).all() and plan.as_dict()["repeats"] == 3
    ev = memscore.RunStore.create(tmp_path / "eval", n_train=n, n_test=t)
    for mask in plan.masks:
        ev.add_run(mask, test_phi=mask @ w.T + 0.1 * rng.normal(size=t))
    score = ev.lds(dm.weights)
    assert score.n_subsets == 8 and score.mean > 0.9
    assert ev.lds(memscore.influence(store.masks(), store.outcomes("test", "phi"))).mean > 0.5
    with pytest.raises(ValueError, match="kind"):
        ev.lds(dm.weights, kind="loss")
    with pytest.raises(ValueError, match="fraction"):
        store.split_runs(1.0)


def test_report_lds_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from memscore.runs.report import EVAL_DIR, lds_table
    from memscore.train import SubsetPlan

    rng = np.random.default_rng(12)
    n, t = 12, 2
    w = rng.normal(size=(t, n))
    store = memscore.RunStore.create(tmp_path / "runs", n_train=n, n_test=t)
    for mask in SubsetPlan(n, 60, seed=0).masks:
        phi = mask @ w.T + 0.1 * rng.normal(size=t)
        store.add_run(mask, test_phi=phi, test_correct=phi > 0, train_correct=rng.random(n) < 0.8)
    ev = memscore.RunStore.create(tmp_path / "runs" / EVAL_DIR, n_train=n, n_test=t)
    for mask in SubsetPlan(n, 6, seed=1, repeats=2).masks:
        ev.add_run(mask, test_phi=mask @ w.T + 0.1 * rng.normal(size=t))
    table = lds_table(store, ev)
    assert table["attribution"].to_list() == ["influence (Feldman–Zhang)", "datamodels"]
    assert (table["subsets"] == 6).all() and (table["lds"] > 0.5).all()
    pytest.importorskip("matplotlib")
    from memscore.runs.report import write_report

    page = write_report(tmp_path / "runs", tmp_path / "report")
    assert "Linear datamodeling score" in page.read_text()


def test_core_row_indices_are_checked() -> None:
    from memscore import _core

    m, y, _, _, _ = _problem(6, t=3)
    bits = PackedBits.pack(m).bits
    rows = np.arange(10, dtype=np.int64)
    with pytest.raises(ValueError, match="rows: expected row indices >= 0, got -1"):
        _core.datamodels_fit(bits, y[:2], m.shape[1], lam=np.full(3, 0.1), rows=np.array([0, -1]))
    with pytest.raises(ValueError, match="out of range"):
        _core.datamodels_fit(bits, y[:2], m.shape[1], lam=np.full(3, 0.1), rows=np.array([0, m.shape[0]]))
    with pytest.raises(ValueError, match="expected 10 rows"):
        _core.datamodels_fit(bits, y, m.shape[1], lam=np.full(3, 0.1), rows=rows)
    with pytest.raises(ValueError, match="val_outcomes go with val_masks or val_rows"):
        _core.datamodels_fit(bits, y[:10], m.shape[1], rows=rows, val_outcomes=y[10:20])


@pytest.mark.parametrize("level", ["avx2", "portable"])
def test_every_vector_level_gives_the_same_fit(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MEMSCORE_VECTOR_LEVEL picks a lower kernel (never one the CPU lacks); all are bit-identical."""
    m, y, _, _, _ = _problem(7, t=40)
    best = memscore.datamodels(m, y, n_lambdas=15)
    monkeypatch.setenv("MEMSCORE_VECTOR_LEVEL", level)
    kernel = memscore.cpu_info()["vector_kernel"]
    assert kernel == {"avx2": "Avx2", "portable": "Portable"}[level] or (level == "avx2" and kernel == "Portable")
    got = memscore.datamodels(m, y, n_lambdas=15)
    np.testing.assert_array_equal(got.weights, best.weights)
    np.testing.assert_array_equal(got.bias, best.bias)
    assert got.sweeps == best.sweeps


# ------------------------------------------------------------------------ executors


def _executor(request: pytest.FixtureRequest, name: str, **settings: object) -> object:
    """The executor ``name`` ("local", "threads", "ray": a RayExecutor on the test cluster)."""
    from memscore.executors import LocalExecutor, RayExecutor, ThreadExecutor

    if name == "ray":
        request.getfixturevalue("ray_cluster")
        return RayExecutor(**settings)  # type: ignore[arg-type]
    return LocalExecutor(**settings) if name == "local" else ThreadExecutor(2, **settings)  # type: ignore[arg-type]


def _assert_same_fit(a: memscore.Datamodels, b: memscore.Datamodels) -> None:
    for f in ("weights", "bias", "lam", "lam_max", "val_mse", "converged", "steps"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.sweeps == b.sweeps


def test_blocks_of_targets_equal_the_full_fit() -> None:
    """Each target's path is its own: a fit of any block of whole core blocks (32 targets)
    is the rows of the one-call fit, bit for bit (also with the early stop, decided per
    core block)."""
    from memscore.runs.datamodels import CORE_BLOCK, FitArgs, check_settings, fit_block, split_rows

    m, y, _, _, _ = _problem(8, t=3 * CORE_BLOCK + 5)
    full = memscore.datamodels(m, y, n_lambdas=25, seed=2)
    keep, held = split_rows(m.shape[0], 0.1, 2)
    fit = FitArgs(lam=None, rows=keep, val_rows=held, settings=check_settings(n_lambdas=25), threads=None)
    bits = PackedBits.pack(m).bits
    for t0, t1 in [(0, 32), (32, 96), (96, 101), (64, 101)]:
        w, b, lam, lam_max, mse, _, _, _ = fit_block(
            bits, m.shape[1], np.ascontiguousarray(y[:, t0:t1]), None, None, fit
        )
        np.testing.assert_array_equal(w, full.weights[t0:t1])
        for got, want in ((b, full.bias), (lam, full.lam), (lam_max, full.lam_max), (mse, full.val_mse)):
            np.testing.assert_array_equal(got, want[t0:t1])


@pytest.mark.parametrize("executor", ["local", "threads", "ray"])
def test_datamodels_identical_under_every_executor(executor: str, request: pytest.FixtureRequest) -> None:
    m, y, vm, vy, _ = _problem(9, t=70)
    ex = _executor(request, executor)
    for kw in ({"n_lambdas": 20, "seed": 1}, {"lam": np.linspace(0.01, 0.1, 70)}):
        want = memscore.datamodels(m, y, **kw)  # type: ignore[arg-type]
        _assert_same_fit(memscore.datamodels(m, y, executor=ex, **kw), want)  # type: ignore[arg-type]
        _assert_same_fit(memscore.datamodels(m, y, executor=ex, targets_per_task=1, **kw), want)  # type: ignore[arg-type]
    want = memscore.datamodels(m, y, val_masks=vm, val_outcomes=vy, n_lambdas=20)
    got = memscore.datamodels(m, y, val_masks=vm, val_outcomes=vy, n_lambdas=20, executor=ex, targets_per_task=40)
    _assert_same_fit(got, want)


def _stores_for_executors(tmp_path, t: int = 40):  # type: ignore[no-untyped-def]
    """A training store (120 runs) and an evaluation store (8 subsets x 2 runs) of ``t``
    test examples with planted sparse linear φ."""
    rng = np.random.default_rng(13)
    n = 20
    w = np.zeros((t, n))
    w[:, :4] = rng.normal(scale=2.0, size=(t, 4))
    store = memscore.RunStore.create(tmp_path / "runs", n_train=n, n_test=t)
    for r in range(120):
        mask = rng.random(n) < 0.5
        phi = mask @ w.T + 0.1 * rng.normal(size=t)
        store.add_run(mask, test_phi=phi, test_correct=phi > 0, run_id=f"r{r:03d}")
    ev = memscore.RunStore.create(tmp_path / "eval", n_train=n, n_test=t)
    for g in range(8):
        mask = rng.random(n) < 0.5
        for k in range(2):
            ev.add_run(mask, test_phi=mask @ w.T + 0.1 * rng.normal(size=t), run_id=f"e{g}-{k}")
    return store, ev


@pytest.mark.parametrize("executor", ["local", "threads", "ray"])
def test_store_datamodels_identical_under_every_executor(executor: str, tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    store, _ = _stores_for_executors(tmp_path)
    ex = _executor(request, executor)
    kept = store.split_runs(0.2, seed=1)[0]
    for kind, kw in (("phi", {"n_lambdas": 15}), ("correct", {"lam": 0.01, "run_ids": kept})):
        masks, outcomes = store._runs_of(kw.get("run_ids"), kind)  # type: ignore[arg-type]
        want = memscore.datamodels(masks, outcomes, **{k: v for k, v in kw.items() if k != "run_ids"})  # type: ignore[arg-type]
        _assert_same_fit(store.datamodels(kind, executor=ex, **kw), want)  # type: ignore[arg-type]
        _assert_same_fit(store.datamodels(kind, executor=ex, targets_per_task=32, **kw), want)  # type: ignore[arg-type]


@pytest.mark.parametrize("executor", ["local", "threads", "ray"])
def test_lds_identical_under_every_executor(executor: str, request: pytest.FixtureRequest) -> None:
    from memscore.runs.lds import boot_means, correlations

    rng = np.random.default_rng(14)
    m = rng.random((12, 30)) < 0.5
    att = rng.normal(size=(600, 30))
    y = m @ att.T + rng.normal(size=(12, 600))
    ex = _executor(request, executor)
    want = memscore.lds(att, m, y, n_boot=450, seed=3)
    got = memscore.lds(att, m, y, n_boot=450, seed=3, executor=ex)
    np.testing.assert_array_equal(got.per_target, want.per_target)
    assert (got.mean, got.ci, got.n_subsets) == (want.mean, want.ci, want.n_subsets)
    # the tasks' grid does not depend on how many tasks there are
    ok = want.per_target[np.isfinite(want.per_target)]
    whole = boot_means(ok, 3, 0, 5, 450)
    parts = np.concatenate([boot_means(ok, 3, c, c + 1, 450) for c in range(5)])
    np.testing.assert_array_equal(whole, parts)
    assert whole.shape == (450,)
    np.testing.assert_array_equal(correlations(m.astype(float), att, y), want.per_target)


@pytest.mark.parametrize("executor", ["local", "threads", "ray"])
def test_store_lds_identical_under_every_executor(executor: str, tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    store, ev = _stores_for_executors(tmp_path)
    att = memscore.influence(store.masks(), store.outcomes("test", "phi"))
    want = ev.lds(att, n_boot=300, seed=5)
    got = ev.lds(att, n_boot=300, seed=5, executor=_executor(request, executor))
    np.testing.assert_array_equal(got.per_target, want.per_target)
    assert (got.mean, got.ci) == (want.mean, want.ci) and want.mean > 0.5
