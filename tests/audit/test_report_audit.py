"""The report's "Audit" section: the pooled ε lower bound equals epsilon_lower_bound on the
same LiRA trials, with its histogram and reference-budget figures; a store without phi
says why there is no audit."""

from __future__ import annotations

import re

import numpy as np
import pytest

import memscore

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")


def _store(path, phi: bool):
    rng = np.random.default_rng(0)
    s = memscore.RunStore.create(path, n_train=120, n_test=20, n_classes=2)
    for _ in range(16):
        m = rng.random(120) < 0.5
        extra = dict(train_phi=rng.normal(size=120) + 2.0 * m, test_phi=rng.normal(size=20)) if phi else {}
        s.add_run(m, train_correct=m | (rng.random(120) < 0.7), test_correct=rng.random(20) < 0.7, **extra)
    return s


def test_audit_section_bounds_epsilon_from_the_lira_trials(tmp_path):
    from memscore.audit import epsilon_lower_bound
    from memscore.runs.report import write_report

    s = _store(tmp_path / "s", phi=True)
    page = write_report(s.path)
    html = page.read_text()
    section = html[html.index("Audit: a lower bound on ε") :]
    got = float(re.search(r"ε ≥ ([0-9.]+) with confidence 95%", section).group(1))
    want = epsilon_lower_bound(s.lira().ravel(), s.masks().ravel(), alpha=0.05).epsilon
    assert want > 0.5 and got == pytest.approx(want, abs=5e-4)
    for name in ("audit_epsilon_hist.png", "audit_reference_budget.png"):
        assert (page.parent / name).read_bytes()[:4] == b"\x89PNG" and name in section


def test_audit_section_without_phi_says_why(tmp_path):
    from memscore.runs.report import write_report

    s = _store(tmp_path / "s", phi=False)
    html = write_report(s.path).read_text()
    section = html[html.index("Audit: a lower bound on ε") :]
    assert "Not computed" in section[:400]


def test_infinite_scores_keep_their_order():
    from memscore.runs.report_sections import _finite_in_order

    s = np.array([[np.inf, 1.0, -np.inf], [np.nan, np.inf, 0.5]])
    got = _finite_in_order(s)
    assert np.isnan(got[1, 0]) and np.isfinite(got[~np.isnan(got)]).all()
    finite = ~np.isnan(s)
    order = np.argsort(s[finite], kind="stable")
    np.testing.assert_array_equal(np.argsort(got[finite], kind="stable"), order)
    assert got[0, 0] == got[1, 1] > 1.0 and got[0, 2] < 0.5
