"""How many runs will a score need? A forecast from a pilot set of runs.

A pilot (say 32-64 runs) is scored at several sub-sample sizes of its runs
(:func:`memscore.runs.reliability.reliability` at R/4, R/2 and R), and each statistic is
extrapolated by the law it follows:

- ``split_half_reliability``: Spearman–Brown from the half correlation (the reliability
  of a mean of k times the runs is ``k r / (1 + (k - 1) r)``);
- ``median_stderr`` and every interval width (``tpr@0.001_width``, ...): the 1/√R law of a
  standard error;
- the others (``top100_overlap``, ``split_half_spearman``, ``lds``, ``auc``): no closed
  law; a line through ``logit(value)`` against ``log(runs)`` over the sub-samples
  (an empirical fit, flagged as such).

Each law is checked against the pilot itself: the value it predicts at each smaller
sub-sample from the full pilot is compared with the value measured there, and
``law_error`` (the largest relative error) and ``law_fits`` (at most ``tolerance``) say
whether to trust it. A :class:`Target` (``"memorization:reliability>=0.9"``) names what
to reach; :meth:`Pilot.forecast` gives the runs each needs, with an interval (the runs
each sub-sample, and the spread over splits, would predict), the wall time and the
GPU-hours from the measured seconds per run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .._validate import check_float
from ..executors import ExecutorLike
from .reliability import SCORES, RunArrays, reliability, spearman_brown, spearman_brown_runs

__all__ = ["Pilot", "Target", "parse_targets"]

#: Short names a target may use for a statistic.
ALIASES = {
    "reliability": "split_half_reliability",
    "stderr": "median_stderr",
    "spearman": "split_half_spearman",
    "overlap": "top100_overlap",
}
_TARGET = re.compile(r"^\s*([A-Za-z_]+)\s*:\s*([A-Za-z0-9_@.]+)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


def _law(statistic: str) -> str:
    """The law a statistic follows: ``spearman-brown``, ``1/sqrt(R)`` or ``empirical``."""
    if statistic == "split_half_reliability":
        return "spearman-brown"
    if statistic == "median_stderr" or statistic.endswith("_width"):
        return "1/sqrt(R)"
    return "empirical"


@dataclass(frozen=True)
class Target:
    """A value a statistic of a score should reach: ``score:statistic>=value`` (or ``<=``).

    Attributes
    ----------
    score : str
        A name of :data:`memscore.runs.reliability.SCORES`.
    statistic : str
        A statistic of :func:`memscore.runs.reliability.reliability` (aliases:
        ``reliability``, ``stderr``, ``spearman``, ``overlap`` for ``top100_overlap``).
    op : {">=", "<="}
    value : float

    Examples
    --------
    >>> t = Target.parse("memorization:reliability>=0.9")
    >>> t.statistic, t.holds(0.95)
    ('split_half_reliability', True)
    """

    score: str
    statistic: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"target: expected a score among {sorted(SCORES)}, got {self.score!r}")
        if self.op not in (">=", "<="):
            raise ValueError(f"target: expected the comparison '>=' or '<=', got {self.op!r}")
        stat = ALIASES.get(self.statistic, self.statistic)
        object.__setattr__(self, "statistic", stat)
        object.__setattr__(self, "value", check_float(self.value, "target value"))
        want = "<=" if _law(stat) == "1/sqrt(R)" else ">="
        if self.op != want:
            raise ValueError(
                f"target {self}: {stat} {'falls' if want == '<=' else 'grows'} with more runs; "
                f"a target for it reads {stat}{want}VALUE"
            )

    @classmethod
    def parse(cls, text: str | Target) -> Target:
        """A target from ``"score:statistic>=value"`` (or ``<=``).

        Raises
        ------
        ValueError
            Text of another shape, an unknown score, or a comparison that more runs do
            not move toward (``reliability<=``, ``stderr>=``).
        TypeError
            Not a string.
        """
        if isinstance(text, Target):
            return text
        if not isinstance(text, str):
            raise TypeError(
                f"target: expected a string such as 'memorization:reliability>=0.9', got {type(text).__name__}"
            )
        m = _TARGET.match(text)
        if m is None:
            raise ValueError(
                f"target: expected 'score:statistic>=value' or 'score:statistic<=value' "
                f"(e.g. 'memorization:reliability>=0.9'), got {text!r}"
            )
        try:
            value = float(m.group(4))
        except ValueError:
            raise ValueError(
                f"target: expected a number after {m.group(3)!r}, got {m.group(4)!r} in {text!r}"
            ) from None
        return cls(m.group(1), m.group(2), m.group(3), value)

    def holds(self, observed: float) -> bool:
        """Whether ``observed`` meets the target (NaN never does)."""
        if not math.isfinite(observed):
            return False
        return observed >= self.value if self.op == ">=" else observed <= self.value

    def options(self) -> dict[str, Any]:
        """The :func:`~memscore.runs.reliability.reliability` options that produce this
        statistic (list lengths, FPR levels)."""
        out: dict[str, Any] = {}
        k = re.fullmatch(r"top(\d+)_overlap", self.statistic)
        if k:
            out["influence_k" if self.score in ("influence_topk", "datamodels") else "top_k"] = int(k.group(1))
        level = re.search(r"tpr@([0-9.eE+-]+?)(?:_width)?$", self.statistic)
        if level:
            out["fpr_levels"] = (float(level.group(1)),)
        return out

    def __str__(self) -> str:
        return f"{self.score}:{self.statistic}{self.op}{self.value:g}"


def parse_targets(targets: str | Target | Iterable[str | Target]) -> list[Target]:
    """Targets from one string / :class:`Target` or several (a string may hold several,
    separated by commas).

    Raises
    ------
    ValueError, TypeError
        As :meth:`Target.parse`, or no target.

    Examples
    --------
    >>> [str(t) for t in parse_targets("memorization:reliability>=0.9, holdout:stderr<=0.02")]
    ['memorization:split_half_reliability>=0.9', 'holdout:median_stderr<=0.02']
    """
    items: list[str | Target] = [targets] if isinstance(targets, (str, Target)) else list(targets)
    out: list[Target] = []
    for item in items:
        parts = item.split(",") if isinstance(item, str) else [item]
        out += [Target.parse(p) for p in parts if not (isinstance(p, str) and not p.strip())]
    if not out:
        raise ValueError("targets: expected at least one target such as 'memorization:reliability>=0.9'")
    return out


def _logit(v: float) -> float:
    return math.log(v / (1.0 - v)) if 0.0 < v < 1.0 else float("nan")


@dataclass
class Pilot:
    """A pilot's statistics at sub-sample sizes of its runs, and the laws that extrapolate them.

    Make one with :meth:`measure` (or :meth:`memscore.RunStore.pilot`).

    Attributes
    ----------
    runs : int
        The pilot's runs.
    tables : dict of int to polars.DataFrame
        The reliability table measured on nested random sub-samples of that many runs
        (the pilot itself included).
    seconds_per_run : float or None
        Measured training time per run (None when the runs did not record it).
    device : str or None
        The device the runs trained on.
    tolerance : float
        The largest relative error of a law on the sub-samples for ``law_fits``.
    """

    runs: int
    tables: dict[int, pl.DataFrame]
    seconds_per_run: float | None = None
    device: str | None = None
    tolerance: float = 0.1

    @classmethod
    def measure(
        cls,
        data: RunArrays,
        scores: Sequence[str] | str,
        *,
        fractions: Sequence[float] = (0.25, 0.5, 1.0),
        seed: int = 0,
        seconds_per_run: float | None = None,
        device: str | None = None,
        tolerance: float = 0.1,
        executor: ExecutorLike = None,
        **options: Any,
    ) -> Pilot:
        """Score the pilot's runs at every fraction of them (nested random sub-samples).

        Parameters
        ----------
        data : RunArrays
            The pilot's runs.
        scores : str or sequence of str
            As :func:`~memscore.runs.reliability.reliability`.
        fractions : sequence of float, default (0.25, 0.5, 1.0)
            Sub-sample sizes as fractions of the runs; sizes under 8 runs are skipped;
            the full pilot is always included.
        seed : int, default 0
            Seed of the sub-samples, the splits and the bootstrap.
        seconds_per_run, device : optional
            The training cost recorded with the runs.
        tolerance : float, default 0.1
            See the class.
        executor : None, str or memscore.executors.Executor
            As :func:`~memscore.runs.reliability.reliability`.
        **options
            More options of :func:`~memscore.runs.reliability.reliability` (``splits``, ...).

        Returns
        -------
        Pilot

        Raises
        ------
        ValueError
            Fewer than 8 runs, a fraction outside (0, 1], or as ``reliability``.
        """
        r = data.n_runs
        if r < 8:
            raise ValueError(f"a pilot needs at least 8 runs, got {r}")
        sizes = {r} | {round(check_float(f, "fractions[]", 0.0, 1.0, low_open=True) * r) for f in fractions}
        perm = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))).permutation(r)
        tables = {}
        for n in sorted(s for s in sizes if s >= 8):
            sub = data if n == r else data.rows(np.sort(perm[:n]))
            tables[n] = reliability(sub, scores, seed=seed, executor=executor, **options)
        return cls(r, tables, seconds_per_run, device, check_float(tolerance, "tolerance", 0.0))

    # ------------------------------------------------------------------ reading
    def value(self, score: str, statistic: str, runs: int | None = None) -> tuple[float, float | None, float | None]:
        """(value, low, high) of a statistic measured on ``runs`` of the pilot's runs
        (default: all); NaN when the table has no such row."""
        t = self.tables[self.runs if runs is None else runs]
        row = t.filter((pl.col("score") == score) & (pl.col("statistic") == statistic))
        if row.height == 0:
            return float("nan"), None, None
        return float(row["value"][0]), row["low"][0], row["high"][0]

    def _points(self, score: str, statistic: str) -> list[tuple[int, float]]:
        """(runs the value describes, value) of every sub-sample, smallest first."""
        out = []
        src = "half_correlation" if statistic == "split_half_reliability" else statistic
        for n in sorted(self.tables):
            v = self.value(score, src, n)[0]
            row = self.tables[n].filter((pl.col("score") == score) & (pl.col("statistic") == src))
            if row.height and math.isfinite(v):
                out.append((int(row["runs"][0]), v))
        return out

    def _fit(self, points: list[tuple[int, float]]) -> tuple[float, float] | None:
        """(intercept, slope) of logit(value) on log(runs) through ``points``."""
        xy = [(math.log(n), _logit(v)) for n, v in points if math.isfinite(_logit(v))]
        if len(xy) < 2 or len({x for x, _ in xy}) < 2:
            return None
        x, y = np.array(xy).T
        slope, icept = np.polyfit(x, y, 1)
        return float(icept), float(slope)

    def predict(self, score: str, statistic: str, runs: int) -> float:
        """The value the statistic's law predicts at ``runs`` runs from the full pilot.

        Examples
        --------
        >>> import numpy as np
        >>> from memscore.runs.reliability import RunArrays
        >>> rng = np.random.default_rng(0)
        >>> m = rng.random((32, 80)) < 0.5
        >>> y = rng.random((32, 80)) < np.where(m, 0.9, rng.random(80))
        >>> p = Pilot.measure(RunArrays(m, train=y), "memorization", splits=4)
        >>> p.predict("memorization", "median_stderr", 128) < p.value("memorization", "median_stderr")[0]
        True
        """
        stat = ALIASES.get(statistic, statistic)
        law = _law(stat)
        pts = self._points(score, stat)
        if not pts:
            return float("nan")
        n0, v0 = pts[-1]
        if law == "spearman-brown":
            return spearman_brown(v0, runs / n0)
        if law == "1/sqrt(R)":
            return v0 * math.sqrt(n0 / runs)
        fit = self._fit(pts)
        if fit is None:
            return float("nan")
        z = fit[0] + fit[1] * math.log(runs * n0 / self.runs)
        return 1.0 / (1.0 + math.exp(-z))

    def law_error(self, score: str, statistic: str) -> float:
        """Largest relative error of the law, fitted on the full pilot, at the smaller
        sub-samples (for the empirical law: fitted without the full pilot, at the full
        pilot); NaN when there is nothing to compare."""
        stat = ALIASES.get(statistic, statistic)
        law = _law(stat)
        if law == "empirical":
            pts = self._points(score, stat)
            fit = self._fit(pts[:-1]) if len(pts) > 2 else None
            if fit is None:
                return float("nan")
            n, v = pts[-1]
            pred = 1.0 / (1.0 + math.exp(-(fit[0] + fit[1] * math.log(n))))
            return abs(pred - v) / abs(v) if v else float("nan")
        errs = []
        for n in sorted(self.tables)[:-1]:
            measured = self.value(score, stat, n)[0]
            if math.isfinite(measured) and measured != 0:
                errs.append(abs(self.predict(score, stat, n) - measured) / abs(measured))
        return max(errs) if errs else float("nan")

    def runs_needed(self, target: Target | str) -> tuple[float, float, float]:
        """(runs, low, high) to reach ``target`` by its law (``inf`` when the law never gets
        there, NaN when the pilot cannot tell). The interval holds what each sub-sample of
        the pilot predicts and, for reliability, the 10%-90% range of the half correlation
        over splits."""
        t = Target.parse(target)
        law = _law(t.statistic)
        pts = self._points(t.score, t.statistic)
        if not pts:
            return float("nan"), float("nan"), float("nan")
        each: list[float] = []
        if law == "spearman-brown":
            each = [spearman_brown_runs(v, n, t.value) for n, v in pts]
            _, lo, hi = self.value(t.score, "half_correlation")
            n0 = pts[-1][0]
            each += [spearman_brown_runs(x, n0, t.value) for x in (lo, hi) if x is not None]
            best = spearman_brown_runs(pts[-1][1], n0, t.value)
        elif law == "1/sqrt(R)":
            each = [n * (v / t.value) ** 2 if t.value > 0 else float("inf") for n, v in pts]
            best = each[-1]
        else:
            fits = [self._fit(pts)] + [self._fit([a, b]) for i, a in enumerate(pts) for b in pts[i + 1 :]]
            for k, fit in enumerate(fits):
                z = _logit(t.value)
                if fit is None or not math.isfinite(z):
                    runs = float("nan")
                elif fit[1] <= 0:
                    runs = float("inf")
                else:
                    runs = math.exp((z - fit[0]) / fit[1]) * self.runs / pts[-1][0]
                if k == 0:
                    best = runs
                else:
                    each.append(runs)
        finite = [x for x in [best, *each] if not math.isnan(x)]
        if math.isnan(best) or not finite:
            return best, float("nan"), float("nan")
        return best, min(finite), max(finite)

    def forecast(self, targets: str | Target | Iterable[str | Target]) -> pl.DataFrame:
        """The runs every target needs.

        Returns
        -------
        polars.DataFrame
            One row per target: ``target``, ``score``, ``statistic``, ``goal``,
            ``pilot_runs``, ``current`` (the value at the pilot), ``met`` (already),
            ``runs`` (needed, rounded up; null when the law never gets there or the
            pilot cannot tell), ``runs_low``, ``runs_high`` (the interval), ``more_runs``
            (beyond the pilot), ``law``, ``law_error``, ``law_fits``,
            ``seconds_per_run``, ``wall_hours`` and ``gpu_hours`` (of all ``runs``, at the
            measured seconds per run; GPU-hours are 0 for runs trained on a CPU).

        Raises
        ------
        ValueError, TypeError
            As :func:`parse_targets`.
        """
        rows = []
        for t in parse_targets(targets):
            runs, lo, hi = self.runs_needed(t)
            current = self.value(t.score, t.statistic)[0]
            err = self.law_error(t.score, t.statistic)

            def up(x: float) -> int | None:
                return int(math.ceil(x - 1e-9)) if math.isfinite(x) else None

            n = up(runs)
            spr = self.seconds_per_run
            wall = None if n is None or spr is None else n * spr / 3600.0
            gpu = None if wall is None else (wall if self.device and "cuda" in self.device else 0.0)
            rows.append(
                dict(
                    target=str(t), score=t.score, statistic=t.statistic, goal=t.value, pilot_runs=self.runs,
                    current=current, met=t.holds(current), runs=n, runs_low=up(lo), runs_high=up(hi),
                    more_runs=None if n is None else max(n - self.runs, 0), law=_law(t.statistic),
                    law_error=err, law_fits=bool(math.isfinite(err) and err <= self.tolerance),
                    seconds_per_run=spr, wall_hours=wall, gpu_hours=gpu,
                )
            )  # fmt: skip
        schema = {
            "target": pl.String, "score": pl.String, "statistic": pl.String, "goal": pl.Float64,
            "pilot_runs": pl.Int64, "current": pl.Float64, "met": pl.Boolean, "runs": pl.Int64,
            "runs_low": pl.Int64, "runs_high": pl.Int64, "more_runs": pl.Int64, "law": pl.String,
            "law_error": pl.Float64, "law_fits": pl.Boolean, "seconds_per_run": pl.Float64,
            "wall_hours": pl.Float64, "gpu_hours": pl.Float64,
        }  # fmt: skip
        return pl.DataFrame(rows, schema=schema)
