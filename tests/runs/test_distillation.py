"""memscore.distillation_effect: every per-example column equals the plain reference loops on
the stores' own runs (trained on digits with the driver), the summaries equal their
definitions, the teacher comes from a store, logits or the distilled runs' metadata, and bad
input gets a named error."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

import memscore
from memscore.reference import distillation as ref
from memscore.reference import membership_metrics as ref_membership_metrics

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from memscore.datasets import digits  # noqa: E402
from memscore.train import SubsetPlan, create_store, mlp, train_runs  # noqa: E402

RUNS = 12
KW = dict(epochs=4, batch_size=64, lr=0.1, progress=False, ensemble=RUNS, device="cpu")


@pytest.fixture(scope="module")
def arms(tmp_path_factory):
    """Plain runs at widths 4 and 16, teacher runs at width 64 and the "distilled" runs at
    width 4, all on one plan (so run r of each store trained on the same subset). The
    distilled runs are trained on smoothed labels here: distillation_effect only reads the
    stores, and training on a teacher is the driver's business (memscore.train)."""
    root = tmp_path_factory.mktemp("distill")
    d = digits(label_noise=0.1, seed=0)
    train, test = (d.x_train, d.y_train), (d.x_test, d.y_test)
    plan = SubsetPlan(d.n_train, RUNS, seed=0)
    stores = {}
    for name, width, extra in (
        ("plain", 4, {}),
        ("mid", 16, {}),
        ("teacher", 64, {}),
        ("distilled", 4, {"label_smoothing": 0.3}),
    ):
        s = create_store(root / name, train, test, n_classes=d.n_classes)
        train_runs(lambda w=width: mlp(d.n_features, d.n_classes, width=w, activation="relu"), train, test, plan, s,
                   **KW, **extra)  # fmt: skip
        stores[name] = s
    return stores


def _runs(s):
    return s.masks(), s.outcomes("train", "correct"), s.outcomes("train", "logits")


def test_columns_equal_the_reference_loops(arms):
    p, d, t = arms["plain"], arms["distilled"], arms["teacher"]
    effect = memscore.distillation_effect(p, d, teacher=t)
    want = ref.per_example(_runs(p), _runs(d), p.train_labels, teacher=(t.masks(), t.outcomes("train", "logits")))
    table = effect.table
    assert table.height == p.n_train and table["index"].to_list() == list(range(p.n_train))
    assert table["label"].to_list() == p.train_labels.tolist()
    for col, values in want.items():
        # probabilities: the stores' φ is float32, the reference softmaxes the float32 logits
        np.testing.assert_allclose(table[col].to_numpy(), values, rtol=0, atol=1e-6, equal_nan=True, err_msg=col)
    assert np.isfinite(table["delta"].to_numpy()).mean() > 0.9  # the arms' estimates are defined
    assert effect.teacher == str(t.path) and effect.kind == "correct"
    assert "trajectory" not in table.columns


def test_phi_memorization_and_the_stores_own_scores(arms):
    p, d = arms["plain"], arms["distilled"]
    effect = memscore.distillation_effect(p, d, kind="phi")
    mem, se = p.memorization("phi", stderr=True)
    np.testing.assert_array_equal(effect.table["mem_plain"].to_numpy(), mem)
    want_se = np.sqrt(se**2 + d.memorization("phi", stderr=True)[1] ** 2)
    np.testing.assert_array_equal(effect.table["delta_stderr"].to_numpy(), want_se)
    assert effect.teacher is None and "teacher_conf" not in effect.table.columns
    assert effect.confidence.height == 0


def test_trajectory_classes_and_their_mean_delta(arms):
    p, d, t = arms["plain"], arms["distilled"], arms["teacher"]
    mid_mem = arms["mid"].memorization()
    effect = memscore.distillation_effect(p, d, teacher=t, trajectories={4: p, 16: mid_mem, 64: t}, ci=0.9)
    want = memscore.trajectories({4: p.memorization(), 16: mid_mem, 64: t.memorization()})["trajectory"]
    assert effect.table["trajectory"].to_list() == want.to_list()
    got = {r["trajectory"]: r for r in effect.by_trajectory.iter_rows(named=True)}
    expect = ref.trajectory_means(effect.table["delta"].to_numpy(), want.to_list(), ci=0.9)
    assert effect.by_trajectory["trajectory"][0] == "all" and set(got) == set(expect)
    for k, (n, mean, lo, hi) in expect.items():
        row = got[k]
        assert row["n"] == n
        np.testing.assert_allclose([row["mean_delta"], row["ci_low"], row["ci_high"]], [mean, lo, hi], rtol=1e-12,
                                   equal_nan=True, err_msg=k)  # fmt: skip


def test_confidence_bins_on_train_and_test(arms):
    p, d, t = arms["plain"], arms["distilled"], arms["teacher"]
    effect = memscore.distillation_effect(p, d, teacher=t, bins=5)
    conf = effect.confidence
    assert conf["split"].unique(maintain_order=True).to_list() == ["train", "test"]
    train = conf.filter(pl.col("split") == "train")
    want = ref.confidence_bins(effect.table["teacher_conf"].to_numpy(), effect.table["student_conf"].to_numpy(), 5)
    assert train["n"].to_list() == [w[0] for w in want]
    np.testing.assert_allclose(train["teacher_conf"].to_numpy(), [w[1] for w in want], equal_nan=True)
    np.testing.assert_allclose(train["student_conf"].to_numpy(), [w[2] for w in want], equal_nan=True)
    # test: every run held every test example out; the teacher's are its paired runs
    probs = {k: ref.label_probability(s.outcomes("test", "logits"), s.test_labels).mean(0) for k, s in arms.items()}
    test = conf.filter(pl.col("split") == "test")
    want = ref.confidence_bins(probs["teacher"], probs["distilled"], 5)
    assert test["n"].to_list() == [w[0] for w in want] and sum(test["n"]) == p.n_test
    np.testing.assert_allclose(test["student_conf"].to_numpy(), [w[2] for w in want], atol=1e-6, equal_nan=True)
    assert test["teacher_low"].to_list() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])


def test_arms_accuracy_and_membership(arms):
    p, d, t = arms["plain"], arms["distilled"], arms["teacher"]
    effect = memscore.distillation_effect(p, d, teacher=t, ci=0.9, n_boot=50)
    rows = {r["arm"]: r for r in effect.arms.iter_rows(named=True)}
    assert list(rows) == ["plain", "distilled", "teacher"]
    for name in rows:
        s, row = arms[name], rows[name]
        acc = s.outcomes("test", "correct").mean(axis=1)
        assert row["runs"] == RUNS and row["test_accuracy"] == pytest.approx(acc.mean())
        assert row["test_accuracy_stderr"] == pytest.approx(acc.std(ddof=1) / np.sqrt(RUNS))
        m = ref_membership_metrics(s.lira(), s.masks())
        assert row["auroc"] == pytest.approx(m["auc"]) and row["tpr_at_fpr_0.001"] == pytest.approx(
            m["tpr_at_fpr_0.001"]
        )
        assert row["auroc_low"] <= row["auroc"] <= row["auroc_high"]
    assert rows["teacher"]["test_accuracy"] > rows["plain"]["test_accuracy"]  # width 64 against width 4
    rmia = memscore.distillation_effect(p, d, attack="rmia").arms
    assert rmia["attack"].to_list() == ["rmia", "rmia"] and rmia["auroc_low"].is_null().all()
    assert rmia["auroc"][0] == pytest.approx(memscore.membership_metrics(p.rmia(), p.masks()).auc)


def test_teacher_logits_array(arms):
    p, d, t = arms["plain"], arms["distilled"], arms["teacher"]
    logits = t.outcomes("train", "logits")[0]
    effect = memscore.distillation_effect(p, d, teacher=logits)
    want = ref.label_probability(logits, p.train_labels)
    np.testing.assert_allclose(effect.table["teacher_conf"].to_numpy(), want, rtol=1e-12)
    assert effect.teacher == "logits" and effect.confidence["split"].unique().to_list() == ["train"]
    assert effect.arms["arm"].to_list() == ["plain", "distilled"]


def test_teacher_from_the_distilled_runs_metadata(arms, tmp_path):
    """The driver records the teacher store in each distilled run; given no teacher=, that
    store is opened."""
    p, d, t = arms["plain"], arms["distilled"], arms["teacher"]
    copy = memscore.RunStore.create(tmp_path / "d", n_train=d.n_train, n_test=d.n_test, train_labels=d.train_labels,
                                    test_labels=d.test_labels, n_classes=d.n_classes)  # fmt: skip
    spec = {"teacher": {"store": str(t.path.resolve())}, "alpha": 0.5, "temperature": 4.0, "start_epoch": 0}
    logits = d.outcomes("train", "logits"), d.outcomes("test", "logits")
    for k, rid in enumerate(d.run_ids()):
        copy.add_run(d.mask(rid), train_logits=logits[0][k], test_logits=logits[1][k], keep_logits=True, run_id=rid,
                     metadata={"distill": spec})  # fmt: skip
    got = memscore.distillation_effect(p, copy)
    want = memscore.distillation_effect(p, d, teacher=t)
    assert got.teacher == want.teacher
    assert got.table.equals(want.table)
    spec["teacher"]["store"] = str(tmp_path / "gone")
    other = memscore.RunStore.create(tmp_path / "d2", n_train=d.n_train, n_test=d.n_test, train_labels=d.train_labels,
                                     test_labels=d.test_labels, n_classes=d.n_classes)  # fmt: skip
    other.add_run(
        d.mask(d.run_ids()[0]), train_logits=logits[0][0], test_logits=logits[1][0], metadata={"distill": spec}
    )
    with pytest.raises(memscore.StoreError, match=r"records the teacher store .*gone.* pass teacher="):
        memscore.distillation_effect(p, other)


# ----------------------------------------------------------------------------- bad input


def _like(s, path, *, labels=None, n_train=None, runs=()):
    y = s.train_labels if labels is None else labels
    out = memscore.RunStore.create(path, n_train=len(y) if n_train is None else n_train, n_test=s.n_test,
                                   train_labels=y, test_labels=s.test_labels, n_classes=s.n_classes)  # fmt: skip
    for mask, rid in runs:
        out.add_run(mask, train_phi=np.zeros(len(y)), test_phi=np.zeros(s.n_test), train_correct=None, run_id=rid)
    return out


def test_stores_over_other_examples_are_named(arms, tmp_path):
    p, d = arms["plain"], arms["distilled"]
    short = _like(p, tmp_path / "a", labels=p.train_labels[:-1])
    with pytest.raises(ValueError, match=r"^distilled: expected the examples of plain"):
        memscore.distillation_effect(p, short)
    flipped = _like(p, tmp_path / "b", labels=(p.train_labels + 1) % 10)
    with pytest.raises(ValueError, match=r"^teacher: expected the train labels of plain"):
        memscore.distillation_effect(p, d, teacher=flipped)
    with pytest.raises(ValueError, match=r"^trajectories\[4\]: expected the train labels"):
        memscore.distillation_effect(p, d, trajectories={4: flipped, 8: p})
    with pytest.raises(TypeError, match=r"^plain: expected a memscore.RunStore"):
        memscore.distillation_effect(np.zeros(3), d)
    empty = _like(p, tmp_path / "c")
    with pytest.raises(memscore.StoreError, match=r"^distilled: .* holds no runs"):
        memscore.distillation_effect(p, empty)


def test_teacher_runs_missing_or_of_another_subset(arms, tmp_path):
    p, d = arms["plain"], arms["distilled"]
    ids = d.run_ids()
    partial = _like(p, tmp_path / "a", runs=[(d.mask(rid), rid) for rid in ids[:-1]])
    with pytest.raises(ValueError, match=rf"^teacher: no run '{ids[-1]}' .*\(1 of the {RUNS} distilled runs"):
        memscore.distillation_effect(p, d, teacher=partial)
    swapped = _like(p, tmp_path / "b", runs=[(d.mask(ids[(k + 1) % RUNS]), rid) for k, rid in enumerate(ids)])
    with pytest.raises(ValueError, match=rf"^teacher: run '{ids[0]}' .* another subset"):
        memscore.distillation_effect(p, d, teacher=swapped)


def test_bad_teacher_logits(arms):
    p, d = arms["plain"], arms["distilled"]
    n, c = p.n_train, p.n_classes
    with pytest.raises(ValueError, match=rf"^teacher: expected logits of shape \({n}, {c}\).*got \(3, {c}\)"):
        memscore.distillation_effect(p, d, teacher=np.zeros((3, c)))
    with pytest.raises(ValueError, match=rf"^teacher: expected logits of {c} classes"):
        memscore.distillation_effect(p, d, teacher=np.zeros((n, c + 1)))
    z = np.zeros((n, c))
    z[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"^teacher: logits contain NaN or infinite values \(1 rows, first row 7\)"):
        memscore.distillation_effect(p, d, teacher=z)
    z[7, 2] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        memscore.distillation_effect(p, d, teacher=z)
    with pytest.raises(TypeError, match=r"^teacher: expected a RunStore or \(n_train, C\) float logits"):
        memscore.distillation_effect(p, d, teacher=np.zeros((n, c), dtype=bool))


@pytest.mark.parametrize(
    ("kw", "err", "pattern"),
    [
        ({"kind": "loss"}, ValueError, r"^kind: expected one of"),
        ({"bins": 0}, ValueError, r"^bins:"),
        ({"attack": "mia"}, ValueError, r"^attack: expected one of"),
        ({"ci": 1.0}, ValueError, r"^ci:"),
        ({"ci": None}, TypeError, r"^ci:"),
        ({"n_boot": 0}, ValueError, r"^n_boot:"),
        ({"tol": 0.0}, ValueError, r"^tol:"),
        ({"trajectories": [1, 2]}, TypeError, r"^trajectories: expected a mapping"),
        ({"trajectories": {1: np.zeros(3), 2: np.zeros(3)}}, ValueError, r"^trajectories\[1\]: expected shape"),
        (
            {"trajectories": {1: np.full(1258, np.inf), 2: np.zeros(1258)}},
            ValueError,
            r"^trajectories\[1\]: .*infinite",
        ),
    ],
)
def test_bad_settings_are_named(arms, kw, err, pattern):
    with pytest.raises(err, match=pattern):
        memscore.distillation_effect(arms["plain"], arms["distilled"], **kw)


def test_summary_json_ready(arms):
    """The summary tables serialize as they are (the CLI prints them)."""
    effect = memscore.distillation_effect(arms["plain"], arms["distilled"], teacher=arms["teacher"])
    for df in (effect.by_trajectory, effect.confidence, effect.arms):
        json.loads(df.write_json())
    assert "DistillationEffect(1258 examples" in repr(effect)


# ----------------------------------------------------------------------------- report section


def test_report_distillation_section(arms, tmp_path):
    """The section appears only given a distilled store: the arms table, both figures and
    the largest drops, most negative delta first, with the computed numbers."""
    pytest.importorskip("matplotlib")
    from memscore.runs.report import write_report

    p, d, t = arms["plain"], arms["distilled"], arms["teacher"]
    page = write_report(p.path, tmp_path / "r", membership=False, distilled=d.path, teacher=t, gallery_rows=5)
    html = page.read_text()
    section = html[html.index("<h2>Distillation</h2>") :]
    for name in ("distillation_delta.png", "distillation_confidence.png"):
        assert name in section and (page.parent / name).read_bytes()[:4] == b"\x89PNG"
    effect = memscore.distillation_effect(p, d, teacher=t)
    drops = effect.table.filter(pl.col("delta").is_not_nan()).sort("delta", maintain_order=True).head(5)
    table = section[section.index('id="distillation-drops"') :]
    shown = [int(i) for i in re.findall(r'<tr><td>.*?</td><td data-v="[^"]*">(\d+)</td>', table)]
    assert shown == drops["index"].to_list()
    assert f"{effect.arms['test_accuracy'][1]:.4f}" in section  # the distilled arm's accuracy
    assert "the paired runs of" in section and "Student against teacher confidence" in section
    plain_only = write_report(p.path, tmp_path / "r2", membership=False).read_text()
    assert "Distillation" not in plain_only


def test_report_refuses_a_bad_distilled_store_before_drawing(arms, tmp_path):
    pytest.importorskip("matplotlib")
    from memscore.runs.report import write_report

    p = arms["plain"]
    other = _like(p, tmp_path / "o", labels=(p.train_labels + 1) % 10)
    with pytest.raises(ValueError, match=r"^distilled: expected the train labels of plain"):
        write_report(p.path, tmp_path / "r", distilled=other)
    assert not (tmp_path / "r" / "index.html").exists() and not list((tmp_path / "r").glob("*.png"))
    with pytest.raises(ValueError, match=r"^plain_size: only for a sweep"):
        write_report(p.path, tmp_path / "r", distilled=arms["distilled"], plain_size=4)


def test_edge_examples_match_the_reference(tmp_path):
    """Examples in every run, in none, in one: NaN where a side is missing, as the loops say."""
    rng = np.random.default_rng(1)
    n, c, runs = 9, 3, 5
    y = rng.integers(0, c, n)
    stores = [
        memscore.RunStore.create(tmp_path / name, n_train=n, n_test=2, train_labels=y, test_labels=[0, 1], n_classes=c)
        for name in ("p", "d", "t")
    ]
    masks = rng.random((runs, n)) < 0.5
    masks[:, 0], masks[:, 1], masks[:, 2] = True, False, np.arange(runs) == 0
    logits = {}
    for s in stores:
        z = rng.normal(size=(runs, n, c)) * 3
        z[:, 3] = 0.0  # ties: uniform probabilities
        logits[s.path.name] = z
        for r in range(runs):
            s.add_run(
                masks[r], train_logits=z[r], test_logits=rng.normal(size=(2, c)), run_id=f"r{r}", keep_logits=True
            )
    p, d, t = stores
    effect = memscore.distillation_effect(p, d, teacher=t, executor="threads:2")
    want = ref.per_example(_runs(p), _runs(d), y, teacher=(masks, logits["t"]))
    for col, values in want.items():
        np.testing.assert_allclose(effect.table[col].to_numpy(), values, atol=1e-6, equal_nan=True, err_msg=col)
    assert np.isnan(effect.table["mem_plain"][0]) and np.isnan(effect.table["plain_conf"][1])
    assert np.isnan(effect.table["delta_stderr"][2]) and not np.isnan(effect.table["plain_conf"][2])
    assert effect.table["student_conf"][3] == pytest.approx(1 / c)
    assert effect.table.equals(memscore.distillation_effect(p, d, teacher=t, chunk_runs=2).table)
