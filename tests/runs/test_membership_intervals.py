"""Bootstrap intervals of the membership metrics (coverage on a binormal ROC with a known
truth, the vectorized replicate against a loop), and the reference budget of LiRA / RMIA
against the plain reference, at the full budget, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import binom, norm

import memscore
from memscore import RunStore
from memscore.reference.references import lira_references, rmia_references
from memscore.runs.reference_budget import reference_budget
from memscore.runs.references import max_references

MU = 1.0
LEVELS = (0.01, 0.001, 0.0001)


def binormal_truth(mu: float, levels: tuple[float, ...]) -> dict[str, float]:
    """Members ~ N(mu, 1), non-members ~ N(0, 1): AUROC = Phi(mu / sqrt 2), and the TPR at
    FPR f of the threshold Phi^-1(1 - f) is 1 - Phi(Phi^-1(1 - f) - mu)."""
    out = {"auc": float(norm.cdf(mu / np.sqrt(2.0)))}
    out.update({f"tpr_at_fpr_{f:g}": float(norm.sf(norm.isf(f) - mu)) for f in levels})
    return out


def test_intervals_cover_a_known_roc():
    # 200 replicates of 1,000 members and 1,000 non-members. AUROC and TPR at 1% (10 expected
    # false positives at the threshold) must cover the truth in >= 93% of replicates, up to
    # binomial noise: the count may fall below 0.93 * 200 only by what a 0.1% tail allows.
    # (TPR at 0.1% or 0.01% needs 10^4 / 10^5 non-members: benches/bench_membership_intervals.py.)
    reps, n, levels = 200, 1000, (0.01,)
    truth = binormal_truth(MU, levels)
    covered = dict.fromkeys(truth, 0)
    members = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    for rep in range(reps):
        scores = np.random.default_rng(10_000 + rep).normal(size=2 * n) + MU * members
        m = memscore.membership_metrics(scores, members, fpr_levels=levels, ci=0.95, n_boot=200, seed=rep)
        for key, (lo, hi) in m.intervals["examples"].items():
            covered[key] += lo <= truth[key] <= hi
    least = binom.ppf(0.001, reps, 0.93)
    assert all(c >= least for c in covered.values()), (covered, least)


def _replicate_by_loop(scores, members, unit_of, counts, levels):
    """One bootstrap replicate as the resampled trials themselves, through the point estimate."""
    take = np.concatenate([np.flatnonzero(unit_of == u).repeat(c) for u, c in enumerate(counts)])
    return memscore.membership_metrics(scores.ravel()[take], members.ravel()[take], fpr_levels=levels)


@pytest.mark.parametrize("unit", ["examples", "runs"])
def test_weighted_replicates_equal_resampled_trials(rng, unit):
    # The vectorized bootstrap weights trials by their unit's draw count; it must give the
    # metrics of the resampled trials exactly (ties included: scores on a coarse grid).
    from memscore.runs.membership_intervals import bootstrap_metrics

    r, n = 5, 40
    members = rng.random((r, n)) < 0.5
    scores = np.round(rng.normal(size=(r, n)) + members, 1)
    flat = scores.ravel()
    order = np.argsort(-flat, kind="stable")
    s, mm = flat[order], members.ravel()[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    unit_of = np.arange(r * n) % n if unit == "examples" else np.arange(r * n) // n
    n_units = n if unit == "examples" else r
    # one replicate (n_boot=1, ci -> both quantiles are that replicate) and the same draw by hand
    auc_ci, rate_ci = bootstrap_metrics(
        mm, last, unit_of[order], n_units, LEVELS, ci=0.5, n_boot=1, rng=np.random.default_rng(7)
    )
    draws = np.random.default_rng(7).integers(0, n_units, (1, n_units))[0]
    want = _replicate_by_loop(scores, members, unit_of, np.bincount(draws, minlength=n_units), LEVELS)
    assert auc_ci[0] == pytest.approx(want.auc, abs=1e-12) and auc_ci[1] == pytest.approx(want.auc, abs=1e-12)
    for f in LEVELS:
        assert rate_ci[f][0] == pytest.approx(want.tpr_at_fpr[f], abs=1e-12)


def test_intervals_default_output_unchanged_and_shapes(rng):
    members = rng.random((6, 30)) < 0.5
    scores = rng.normal(size=(6, 30)) + members
    plain = memscore.membership_metrics(scores, members)
    assert plain.ci is None and plain.intervals == {}
    assert set(plain.as_dict()) == {"auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1"}
    with_ci = memscore.membership_metrics(scores, members, ci=0.9, n_boot=300, seed=3)
    assert with_ci.auc == plain.auc and with_ci.tpr_at_fpr == plain.tpr_at_fpr
    assert_array_equal(with_ci.fpr, plain.fpr)
    assert set(with_ci.intervals) == {"examples", "runs"}
    for unit in ("examples", "runs"):
        lo, hi = with_ci.intervals[unit]["auc"]
        assert lo <= plain.auc <= hi
        assert with_ci.as_dict()[f"auc_{unit}_lo"] == lo
    # seeded: the same seed, the same intervals; 1-D scores get only the examples interval
    again = memscore.membership_metrics(scores, members, ci=0.9, n_boot=300, seed=3)
    assert again.intervals == with_ci.intervals
    assert set(memscore.membership_metrics(scores[0], members[0], ci=0.9).intervals) == {"examples"}
    # NaN scores are dropped; one class only: NaN points and intervals
    none = memscore.membership_metrics(scores[0], np.ones(30, bool), ci=0.9)
    assert np.isnan(none.auc) and all(np.isnan(v) for v in none.intervals["examples"]["auc"])
    nan_scores = scores.copy()
    nan_scores[:, :5] = np.nan
    got = memscore.membership_metrics(nan_scores, members, ci=0.9, n_boot=50)
    assert np.isfinite(got.intervals["runs"]["auc"]).all()


@pytest.mark.parametrize(("arg", "value", "match"), [("ci", 1.0, "ci"), ("ci", 0.0, "ci"), ("n_boot", 0, "n_boot")])
def test_interval_arguments_are_checked(arg, value, match):
    kw = {"ci": 0.9, arg: value}
    with pytest.raises(ValueError, match=match):
        memscore.membership_metrics(np.array([0.9, 0.1]), np.array([True, False]), **kw)


def balanced(rng, r: int, n: int) -> np.ndarray:
    """Every example in exactly r // 2 of r runs."""
    return np.argsort(rng.random((r, n)), axis=0) < r // 2


@pytest.mark.parametrize("online", [True, False])
def test_reference_budget_matches_reference(rng, online):
    r, n, z = 10, 25, 7
    masks = balanced(rng, r, n)
    phi = rng.normal(size=(r, n)) + masks
    p = rng.uniform(0.05, 0.95, (r, n))
    pop = rng.uniform(0.05, 0.95, (r, z))
    largest, _, _ = max_references(masks, online)
    assert largest == 4
    for k in range(1, largest + 1):
        got = memscore.lira(masks, phi, online=online, references=k, seed=4)
        # k = 1 or 2: sigma of one or two values, computed from sums in the kernel
        assert_allclose(got, lira_references(masks, phi, k, online=online, seed=4), rtol=1e-7, atol=1e-9)
        for kw in ({"gamma": 1.0}, {"gamma": 1.5, "offline_a": 0.0}):
            want = rmia_references(masks, p, pop, k, online=online, seed=4, **kw)
            assert_allclose(memscore.rmia(masks, p, pop, online=online, references=k, seed=4, **kw), want, atol=1e-12)


def test_reference_budget_at_every_reference_is_the_full_score(rng):
    # offline, a target that held example i out leaves exactly r/2 - 1 out-runs: at that
    # budget its shadows are all of them, and the score is the full one, bit for bit
    r, n = 10, 30
    masks = balanced(rng, r, n)
    phi = rng.normal(size=(r, n)) + masks
    full = memscore.lira(masks, phi, online=False)
    budget = memscore.lira(masks, phi, online=False, references=r // 2 - 1)
    assert_array_equal(budget[~masks], full[~masks])
    # views share one set of references
    views = np.stack([phi, phi + 0.5], axis=2)
    assert_allclose(
        memscore.lira(masks, views, references=2, seed=1),
        memscore.lira(masks, phi, references=2, seed=1) + memscore.lira(masks, phi + 0.5, references=2, seed=1),
    )


def test_reference_budget_refuses_more_references_than_out_runs(rng):
    masks = balanced(rng, 10, 12)
    masks[:, 3] = False
    masks[:2, 3] = True  # example 3: 2 in-runs, 8 out-runs
    phi = rng.normal(size=masks.shape)
    with pytest.raises(
        ValueError, match=r"k = 2 .* example 3 has only 1 .* held out by 8 and trained on by 2 of the 10"
    ):
        memscore.lira(masks, phi, references=2)
    memscore.lira(masks, phi, references=2, online=False)  # offline needs out-runs only
    with pytest.raises(ValueError, match=r"k = 8 reference out-runs .* has only 4"):
        memscore.rmia(masks, np.full(masks.shape, 0.5), np.full((10, 3), 0.5), online=False, references=8)
    with pytest.raises(ValueError, match="references"):
        memscore.lira(masks, phi, references=0)


def test_reference_budget_table(rng):
    r, n, z = 8, 40, 10
    masks = balanced(rng, r, n)
    phi = rng.normal(size=(r, n)) + 2 * masks
    p, pop = memscore.true_class_probability(phi), rng.uniform(0.1, 0.9, (r, z))
    t = reference_budget(masks, phi=phi, probs=p, population=pop, n_boot=100)
    assert t["score"].to_list() == ["lira"] * 4 + ["rmia"] * 4
    assert t["k"].to_list() == [1, 2, 3, None] * 2
    full = memscore.membership_metrics(memscore.lira(masks, phi), masks, fpr_levels=LEVELS, ci=0.95, n_boot=100)
    row = t.filter((t["score"] == "lira") & t["k"].is_null()).to_dicts()[0]
    assert row == {"score": "lira", "k": None, **full.as_dict()}
    k2 = memscore.membership_metrics(memscore.rmia(masks, p, pop, references=2), masks, fpr_levels=LEVELS)
    assert t.filter((t["score"] == "rmia") & (t["k"] == 2))["auc"].item() == k2.auc
    assert {"auc_examples_lo", "auc_runs_hi", "tpr_at_fpr_0.0001_runs_lo"} <= set(t.columns)
    with pytest.raises(ValueError, match="k = 5"):
        reference_budget(masks, phi=phi, scores=["lira"], ks=[1, 5])
    with pytest.raises(ValueError, match="probs, population"):
        reference_budget(masks, phi=phi, scores=["rmia"])
    with pytest.raises(ValueError, match="scores"):
        reference_budget(masks, phi=phi, scores=["loss"])


def test_store_reference_budget(tmp_path: Path, rng):
    n, t, c = 24, 9, 3
    y, yt = rng.integers(0, c, n), rng.integers(0, c, t)
    store = RunStore.create(tmp_path / "s", n_train=n, n_test=t, train_labels=y, test_labels=yt, n_classes=c)
    masks = balanced(rng, 8, n)
    for m in masks:
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), y] += 2.0 * m
        store.add_run(m, train_logits=logits, test_logits=rng.normal(size=(t, c)))
    table = store.reference_budget(ks=[1, 3, "all"], n_boot=50)
    phi = store.outcomes("train", "phi")
    lira3 = memscore.membership_metrics(memscore.lira(masks, phi, references=3), masks, fpr_levels=LEVELS)
    assert table.filter((table["score"] == "lira") & (table["k"] == 3))["auc"].item() == lira3.auc
    full = memscore.membership_metrics(store.rmia(), masks, fpr_levels=LEVELS)
    assert table.filter((table["score"] == "rmia") & table["k"].is_null())["auc"].item() == full.auc
    assert_allclose(store.lira(references=2, seed=5), memscore.lira(masks, phi, references=2, seed=5))


def test_ties_of_infinite_scores_are_one_threshold():
    """LiRA offline gives -inf; equal infinities are a tie (half credit), as equal finite
    scores are: [-inf, -inf, 1] with members [T, F, T] has AUROC 0.75, not 1."""
    got = memscore.membership_metrics(np.array([-np.inf, -np.inf, 1.0]), np.array([True, False, True]))
    assert got.auc == pytest.approx(0.75)
    finite = memscore.membership_metrics(np.array([-5.0, -5.0, 1.0]), np.array([True, False, True]))
    assert finite.auc == pytest.approx(0.75)
    top = memscore.membership_metrics(np.array([np.inf, np.inf, -1.0, 0.0]), np.array([True, False, False, True]))
    assert top.auc == pytest.approx(0.625)
