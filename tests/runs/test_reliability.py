"""Reliability of the run scores, the forecast of the runs a target needs, and training that
stops when a target holds."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

import memscore
from memscore.reference import reliability as ref
from memscore.runs.forecast import Pilot, Target, parse_targets
from memscore.runs.reliability import (
    RunArrays,
    half_splits,
    pearson,
    reliability,
    spearman_brown,
    spearman_brown_runs,
    top_k_overlap,
)


def synthetic(r: int, n: int = 400, t: int = 30, seed: int = 0) -> RunArrays:
    """Runs whose outcomes follow a known model: example i is right with probability
    ``p_in[i]`` when trained on, ``p_out[i]`` when held out (a tenth of the examples are
    "mislabelled": right only when trained on); test outcomes follow a random linear model
    of the masks."""
    rng = np.random.default_rng(seed)
    p_out = rng.uniform(0.05, 0.95, n)
    p_in = np.clip(p_out + rng.uniform(0.0, 0.5, n), 0, 1)
    bad = rng.random(n) < 0.1
    p_out[bad] = 0.02
    p_in[bad] = 0.9
    masks = rng.random((r, n)) < 0.5
    train = rng.random((r, n)) < np.where(masks, p_in, p_out)
    w = rng.normal(0, 0.05, (n, t)) * (rng.random((n, t)) < 0.05)
    test = rng.random((r, t)) < 1 / (1 + np.exp(-(masks @ w)))
    phi = np.where(train, 2.0, -1.0) + rng.normal(0, 1.0, (r, n))
    return RunArrays(masks, train=train, test=test, train_phi=phi, corrupted=bad)


# ----------------------------------------------------------------------------- formulas


@pytest.mark.parametrize("r", [-0.5, 0.0, 0.3, 0.9, 1.0, float("nan")])
@pytest.mark.parametrize("k", [0.25, 1.0, 2.0, 16.0])
def test_spearman_brown_matches_reference(r: float, k: float) -> None:
    got, want = spearman_brown(r, k), ref.spearman_brown(r, k)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


@pytest.mark.parametrize("r", [-0.2, 0.0, 0.1, 0.5, 0.99, 1.0, float("nan")])
def test_spearman_brown_runs_inverts_it(r: float) -> None:
    got, want = spearman_brown_runs(r, 32, 0.9), ref.spearman_brown_runs(r, 32, 0.9)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
    if 0 < r < 1:
        assert spearman_brown(r, got / 32) == pytest.approx(0.9)


def test_formulas_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="factor"):
        spearman_brown(0.5, 0)
    with pytest.raises(ValueError, match="target"):
        spearman_brown_runs(0.5, 10, 1.0)
    with pytest.raises(ValueError, match="n_runs"):
        half_splits(3, 1, 0)


def test_pearson_and_overlap_match_reference_on_random_inputs_and_edges() -> None:
    rng = np.random.default_rng(1)
    cases = [rng.normal(size=(2, 50)) for _ in range(5)]
    a = rng.normal(size=50)
    a[::7] = np.nan
    cases += [
        np.stack([a, a + rng.normal(size=50)]),
        np.zeros((2, 0)),  # empty
        np.ones((2, 1)),  # one element
        np.ones((2, 10)),  # constant: NaN
        np.array([[1, 1, 2, 2, 3], [3, 3, 2, 2, 1]], dtype=float),  # ties
        np.array([[1e150, -1e150, 0, 1, 2], [1, 2, 3, 4, 5]]),  # extreme
    ]
    for x, y in cases:
        for got, want in ((pearson(x, y), ref.pearson(list(x), list(y))),):
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)
        for k in (1, 3, 100):
            for largest in (True, False):
                g = top_k_overlap(x, y, k, largest=largest)
                w = ref.top_k_overlap(list(x), list(y), k, largest)
                assert (math.isnan(g) and math.isnan(w)) or g == w


def test_half_splits_are_disjoint_halves_independent_of_the_split_count() -> None:
    few, many = half_splits(11, 2, 5), half_splits(11, 6, 5)
    for (a, b), (c, d) in zip(few, many[:2], strict=True):
        assert a.tolist() == c.tolist() and b.tolist() == d.tolist()
    for a, b in many:
        assert len(a) == len(b) == 5 and not set(a) & set(b)


# ----------------------------------------------------------------------------- the table


def test_reliability_table_has_every_statistic_and_is_executor_independent() -> None:
    d = synthetic(32)
    names = ["memorization", "holdout", "influence", "influence_topk", "lira", "banzhaf"]
    t = reliability(d, names, splits=3, n_boot=20, fpr_levels=(0.01,))
    assert t.columns == ["score", "statistic", "value", "runs", "low", "high"]
    stats = {(s, st) for s, st in zip(t["score"], t["statistic"], strict=True)}
    for want in [
        ("memorization", "split_half_reliability"),
        ("memorization", "median_stderr"),
        ("memorization", "top100_overlap"),
        ("memorization", "noise_auc"),
        ("holdout", "split_half_spearman"),
        ("influence", "median_stderr"),
        ("influence_topk", "top10_overlap"),
        ("lira", "tpr@0.01_width"),
        ("banzhaf", "median_stderr"),
    ]:
        assert want in stats
    half = t.filter(score="memorization", statistic="half_correlation")
    full = t.filter(score="memorization", statistic="split_half_reliability")
    assert half["runs"].item() == 16 and full["runs"].item() == 32
    assert full["value"].item() == pytest.approx(spearman_brown(half["value"].item(), 2.0))
    # median_stderr is the store's closed form, not a new formula
    se = memscore.memorization(d.masks, d.train, stderr=True)[1]
    got = t.filter(score="memorization", statistic="median_stderr")["value"].item()
    assert got == pytest.approx(float(np.nanmedian(se)))
    threaded = reliability(d, names, splits=3, n_boot=20, fpr_levels=(0.01,), executor="threads:2")
    assert threaded.equals(t)


def test_reliability_refuses_unknown_or_unavailable_scores() -> None:
    d = RunArrays(np.eye(4, dtype=bool), train=np.eye(4, dtype=bool))
    with pytest.raises(ValueError, match="scores"):
        reliability(d, "nope")
    with pytest.raises(ValueError, match="lira.*train_phi"):
        reliability(d, "lira")
    with pytest.raises(ValueError, match="scores"):
        reliability(d, [])


def test_datamodels_lds_and_data_oob_score_on_halves() -> None:
    rng = np.random.default_rng(0)
    mult = rng.integers(0, 3, (40, 12))
    masks = mult > 0
    w = rng.normal(size=(12, 3))
    phi = masks @ w + rng.normal(0, 0.3, (40, 3))
    d = RunArrays(masks, train=rng.random((40, 12)) < 0.7, test_phi=phi, multiplicities=mult)
    t = reliability(d, ["datamodels", "lds", "data_oob"], splits=2, lam=1e-3, influence_k=3, top_k=3)
    assert t.filter(score="datamodels", statistic="split_half_reliability")["value"].item() > 0.8
    assert t.filter(score="lds", statistic="lds")["value"].item() > 0.5
    assert t.filter(score="data_oob", statistic="top3_overlap").height == 1


# ----------------------------------------------------------------------------- forecast


def test_target_grammar() -> None:
    t = Target.parse("memorization:reliability>=0.99")
    assert (t.score, t.statistic, t.op, t.value) == ("memorization", "split_half_reliability", ">=", 0.99)
    assert [str(x) for x in parse_targets(["holdout:stderr<=0.02", "lira:tpr@0.001_width<=0.01"])] == [
        "holdout:median_stderr<=0.02",
        "lira:tpr@0.001_width<=0.01",
    ]
    assert Target.parse("lira:tpr@0.001_width<=0.01").options() == {"fpr_levels": (0.001,)}
    assert Target.parse("influence_topk:top5_overlap>=0.5").options() == {"influence_k": 5}
    for bad, match in [
        ("memorization reliability 0.9", "score:statistic"),
        ("nope:reliability>=0.9", "score"),
        ("memorization:reliability<=0.9", "grows"),
        ("memorization:stderr>=0.1", "falls"),
        ("", "at least one"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_targets(bad)
    with pytest.raises(TypeError, match="target"):
        Target.parse(3)  # type: ignore[arg-type]


def test_forecast_from_64_runs_predicts_256_and_512_within_10_percent() -> None:
    """The done-when check on a synthetic store whose outcomes follow a known model (the
    benchmark makes it on trained MLPs)."""
    d = synthetic(512)
    pilot = Pilot.measure(d.rows(np.arange(64)), ["memorization", "holdout"], splits=10, n_boot=0)
    for n in (256, 512):
        got = reliability(d.rows(np.arange(n)), ["memorization", "holdout"], splits=10, n_boot=0)
        for score, stat in [
            ("memorization", "split_half_reliability"),
            ("memorization", "median_stderr"),
            ("holdout", "split_half_reliability"),
        ]:
            measured = got.filter(score=score, statistic=stat)["value"].item()
            assert pilot.predict(score, stat, n) == pytest.approx(measured, rel=0.1), (score, stat, n)
    # the law checked on the pilot's own half (32 runs) fits; at 16 runs (8 a half, a
    # handful of held-out runs per example) the estimator is too coarse for it
    assert pilot.law_error("memorization", "reliability") < 0.2
    half = Pilot.measure(d.rows(np.arange(64)), ["memorization"], fractions=(0.5,), splits=10, n_boot=0)
    assert half.law_error("memorization", "reliability") < 0.1


def test_forecast_table_runs_meet_the_target_by_the_law() -> None:
    d = synthetic(64)
    pilot = Pilot.measure(d, ["memorization"], splits=6, n_boot=0, seconds_per_run=2.0, device="cuda:0")
    t = pilot.forecast(["memorization:reliability>=0.95", "memorization:stderr<=0.02", "memorization:overlap>=0.9"])
    assert t.height == 3 and t["pilot_runs"].to_list() == [64] * 3
    rel = t.row(0, named=True)
    assert rel["law"] == "spearman-brown" and rel["law_fits"]
    assert pilot.predict("memorization", "reliability", rel["runs"]) >= 0.95 - 1e-9
    assert pilot.predict("memorization", "reliability", rel["runs"] - 1) < 0.95
    assert rel["runs_low"] <= rel["runs"] <= rel["runs_high"]
    assert rel["wall_hours"] == pytest.approx(rel["runs"] * 2.0 / 3600) and rel["gpu_hours"] == rel["wall_hours"]
    se = t.row(1, named=True)
    assert se["law"] == "1/sqrt(R)"
    assert pilot.predict("memorization", "stderr", se["runs"]) <= 0.02
    assert t.row(2, named=True)["law"] == "empirical"


def test_store_reliability_forecast_and_seconds_per_run(tmp_path) -> None:
    d = synthetic(24, n=60, t=5)
    s = memscore.RunStore.create(tmp_path / "s", n_train=60, n_test=5)
    for r in range(24):
        s.add_run(
            d.masks[r],
            train_correct=d.train[r],
            test_correct=d.test[r],
            metadata={"train_seconds": 3.0, "device": "cpu"},
        )
    t = s.reliability(["memorization", "influence"], splits=3)
    want = reliability(s.run_arrays(["memorization", "influence"]), ["memorization", "influence"], splits=3)
    assert t.equals(want)
    sub = s.reliability("memorization", run_ids=s.run_ids()[:8], splits=2)
    assert sub.filter(statistic="split_half_reliability")["runs"].item() == 8
    assert s.seconds_per_run() == (3.0, "cpu")
    f = s.forecast("memorization:reliability>=0.9", splits=3)
    assert f["gpu_hours"].item() == 0.0 and f["seconds_per_run"].item() == 3.0
    (tv,) = s.target_values("memorization:reliability>=0.0001", splits=3)
    assert tv[2] and tv[1] == pytest.approx(
        t.filter(score="memorization", statistic="split_half_reliability")["value"].item()
    )
    with pytest.raises(ValueError, match="corrupted"):
        s.reliability("memorization", corrupted=np.ones(3, dtype=bool))


# ----------------------------------------------------------------------------- until=


def _digits_small():
    from memscore.datasets import digits

    d = digits(label_noise=0.1, seed=0)
    n = 200
    return (d.x_train[:n], d.y_train[:n]), (d.x_test[:50], d.y_test[:50])


def _train(store, plan, **kw):
    from memscore.train import mlp, train_runs

    train, test = _digits_small()
    return train_runs(
        lambda: mlp(64, 10, width=8), train, test, plan, store, epochs=2, batch_size=32, lr=0.1,
        ensemble=8, progress=False, device="cpu", **kw,
    )  # fmt: skip


def test_until_stops_at_the_first_round_that_meets_the_target_and_equals_a_fixed_budget(tmp_path) -> None:
    pytest.importorskip("torch")
    from memscore.train import SubsetPlan, create_store

    train, test = _digits_small()
    plan = SubsetPlan(200, 64, seed=0)
    goal = "holdout:reliability>=0.5"
    a = create_store(tmp_path / "a", train, test)
    got = _train(a, plan, until=goal, round_runs=8, max_runs=64)
    k = len(got)
    assert got == plan.run_ids[:k] and 8 <= k < 64 and k % 8 == 0
    # the target holds now, and did not one round earlier
    assert a.target_values(goal)[0][2]
    earlier = a.reliability("holdout", run_ids=plan.run_ids[: k - 8], n_boot=0) if k > 8 else None
    if earlier is not None:
        assert not Target.parse(goal).holds(earlier.filter(statistic="split_half_reliability")["value"].item())
    # a fixed budget of the same length gives the same runs, bit for bit
    b = create_store(tmp_path / "b", train, test)
    assert _train(b, plan, max_runs=k) == got
    for split in ("train", "test"):
        for kind in ("correct", "phi"):
            assert np.array_equal(a.outcomes(split, kind), b.outcomes(split, kind))
    assert np.array_equal(a.masks(), b.masks())
    # resuming with the target met trains nothing; a budget caps the rounds
    assert _train(a, plan, until=goal, round_runs=8) == []
    c = create_store(tmp_path / "c", train, test)
    assert _train(c, plan, until="holdout:reliability>=0.9999", round_runs=8, max_runs=12) == plan.run_ids[:12]
    with pytest.raises(ValueError, match="round_runs"):
        _train(c, plan, round_runs=8)


def test_plan_cli(tmp_path) -> None:
    from typer.testing import CliRunner

    from memscore.cli import app

    d = synthetic(16, n=40, t=3)
    s = memscore.RunStore.create(tmp_path / "s", n_train=40, n_test=3)
    for r in range(16):
        s.add_run(d.masks[r], train_correct=d.train[r], test_correct=d.test[r])
    res = CliRunner().invoke(
        app, ["plan", str(tmp_path / "s"), "--target", "memorization:reliability>=0.9", "--splits", "3"]
    )
    assert res.exit_code == 0, res.output
    assert "memorization" in res.output and "spearman-brown" in res.output
    out = tmp_path / "f.parquet"
    res = CliRunner().invoke(
        app, ["plan", str(tmp_path / "s"), "--target", "memorization:stderr<=0.05", "--splits", "2", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(out)["law"].item() == "1/sqrt(R)"


def test_report_says_whether_there_are_enough_runs(tmp_path):
    """The report's section: the reliability table and the forecast of RUN_TARGETS, or a
    note when the store has too few runs to split."""
    pytest.importorskip("matplotlib")
    from memscore.runs.report import write_report
    from memscore.runs.report_sections import RUN_TARGETS

    rng = np.random.default_rng(3)
    for runs in (32, 4):
        store = memscore.RunStore.create(tmp_path / f"s{runs}", n_train=60, n_test=10)
        p_out = rng.uniform(0.2, 1.0, 60)
        for _ in range(runs):
            mask = rng.random(60) < 0.5
            store.add_run(mask, train_correct=mask | (rng.random(60) < p_out), test_correct=rng.random(10) < 0.8)
        page = write_report(store.path, membership=False).read_text()
        section = page[page.index("Are there enough runs?") :]
        if runs == 32:
            assert "split_half_reliability" in section and "wall_hours" in section
            assert section.count("<td>memorization:") == 2 and section.count("<td>holdout:") == len(RUN_TARGETS) - 2
        else:
            assert "too few to split" in section and "split_half_reliability" not in section
