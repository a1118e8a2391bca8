"""Which examples each training run sees: the (R, N) mask matrix of a subset experiment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validate import as_mask, check_bool, check_float, check_int

__all__ = ["SubsetPlan"]


def _fraction(x: Any, name: str) -> float:
    return check_float(x, name, 0.0, 1.0, low_open=True, high_open=True)


def _even_rows(m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move examples from the largest to the smallest subsets, within columns, until subset
    sizes differ by at most one. Column sums (runs per example) are unchanged; every move
    picks uniformly among the examples the large run has and the small run lacks."""
    m = m.copy()
    sizes = m.sum(axis=1)
    lo_size = int(sizes.sum()) // m.shape[0]
    while sizes.max() - sizes.min() > 1:
        hi, lo = int(np.argmax(sizes)), int(np.argmin(sizes))
        # Final sizes are lo_size or lo_size + 1: move what both the donor can spare and
        # the receiver lacks (at least one).
        k = max(1, min(int(sizes[hi]) - (lo_size + 1), lo_size - int(sizes[lo])))
        cand = np.flatnonzero(m[hi] & ~m[lo])
        move = rng.choice(cand, size=max(1, min(k, cand.size)), replace=False)
        m[hi, move] = False
        m[lo, move] = True
        sizes[hi] -= move.size
        sizes[lo] += move.size
    return m


class SubsetPlan:
    """The training subsets of ``n_runs`` runs over ``n_examples`` examples.

    ``plan.masks[r, i]`` is True when run ``r`` trains on example ``i``.

    * ``balanced=True`` (default, as LiRA does): every example is in exactly
      ``round(keep * R)`` runs, so every example has the same number of in- and
      out-runs; subset sizes differ by at most one (after a random assignment, examples
      are moved from the largest to the smallest subsets within their columns), so that
      runs take the same number of steps and train together in one ensemble.
    * ``balanced=False`` (as Feldman & Zhang do): every run is a uniform random subset of
      exactly ``round(keep * N)`` examples.

    ``ratios`` puts several subset ratios in one plan (for C-scores, Jiang et al. 2021):
    runs are assigned to the ratios round-robin (run ``r`` gets ``ratios[r % len(ratios)]``),
    and the balancing holds within each ratio's group of runs. ``plan.subset_ratios`` gives
    each run's ratio; the run store groups hold-out accuracy by it.

    ``bootstrap=True`` (Data-OOB, Kwon & Zou 2023): every run draws ``n_examples`` examples
    uniformly *with replacement* (``keep``, ``balanced`` and ``ratios`` do not apply).
    ``plan.multiplicities[r, i]`` counts how often run ``r`` drew example ``i`` (the
    driver shows it that many times per epoch), and ``plan.masks`` is ``multiplicities > 0``;
    an example is out of bag for a run with probability ``(1 - 1/N)^N`` (about 0.37).
    ``plan.multiplicities`` is None for subset plans.

    Run ``r`` is named ``plan.run_ids[r] == f"run-{r:06d}"``, which is how a training driver
    recognizes runs already in a store.

    ``independent=True`` (Poisson sampling, as one-run audits need, Steinke et al. 2023):
    every example is in every run independently with probability ``keep`` (with
    ``ratios``: its run's ratio), so subset sizes and runs per example vary; ``balanced``
    does not apply. Examples may then have no in- or no out-runs (one run is a valid plan).

    ``repeats`` trains every subset several times (different seeds: the driver seeds run
    ``r`` by its index), as evaluation runs for the LDS are made: the plan then has
    ``n_runs * repeats`` runs, the copies of a subset next to each other, and
    ``plan.groups[r]`` is the subset of run ``r``.

    Parameters
    ----------
    n_examples : int
        N, the training examples, >= 1.
    n_runs : int
        R, the runs, >= 1.
    keep : float, default 0.5
        Fraction of the examples each run trains on, in (0, 1).
    balanced : bool, default True
        Every example in the same number of runs (see above).
    ratios : sequence of float, optional
        Several subset ratios in one plan, each in (0, 1) (``keep`` is then ignored).
    seed : int, default 0
        Seed of the assignment.
    repeats : int, default 1
        Runs per subset (see above).
    bootstrap : bool, default False
        Bootstrap samples instead of subsets (see above).
    independent : bool, default False
        Independent inclusion of every example in every run (see above).

    Raises
    ------
    TypeError
        A value of the wrong type.
    ValueError
        A value out of range, or a plan that would leave examples without in- or out-runs
        or runs with empty subsets.

    Examples
    --------
    >>> plan = SubsetPlan(10, 4, keep=0.5, seed=0)
    >>> plan.masks.shape, plan.masks.sum(axis=0).tolist()
    ((4, 10), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    """

    def __init__(
        self,
        n_examples: int,
        n_runs: int,
        keep: float = 0.5,
        *,
        balanced: bool = True,
        ratios: Sequence[float] | None = None,
        seed: int = 0,
        repeats: int = 1,
        bootstrap: bool = False,
        independent: bool = False,
    ) -> None:
        n, r = check_int(n_examples, "n_examples", 1), check_int(n_runs, "n_runs", 1)
        repeats = check_int(repeats, "repeats", 1)
        balanced = check_bool(balanced, "balanced")
        poisson = check_bool(independent, "independent")
        self._multiplicities: npt.NDArray[np.uint16] | None = None
        if check_bool(bootstrap, "bootstrap"):
            if poisson:
                raise ValueError("bootstrap=True and independent=True: choose one way to draw the runs")
            if ratios is not None:
                raise ValueError("bootstrap=True draws n_examples with replacement; ratios do not apply (got ratios)")
            if repeats != 1:
                raise ValueError(f"bootstrap=True draws a new sample per run; repeats does not apply (got {repeats})")
            self.repeats = 1
            self._init_bootstrap(n, r, seed)
            return
        if ratios is None:
            ratio_list = [_fraction(keep, "keep")]
        else:
            ratio_list = [_fraction(x, "ratios[]") for x in ratios]
            if not ratio_list:
                raise ValueError("ratios: expected at least one ratio, got an empty sequence")
            if len(ratio_list) > r:
                raise ValueError(f"ratios: {len(ratio_list)} ratios need at least as many runs, got n_runs = {r}")
        rng = np.random.default_rng(seed)
        masks = np.zeros((r, n), dtype=np.bool_)
        run_ratio = np.array([ratio_list[i % len(ratio_list)] for i in range(r)])
        for g, ratio in enumerate(ratio_list):
            rows = np.arange(g, r, len(ratio_list))
            if poisson:
                # One uniform per (run, example), drawn whether or not the plan is balanced.
                masks[rows] = rng.random((rows.size, n)) < ratio
            elif balanced:
                m = int(round(ratio * rows.size))
                if m == 0 or m == rows.size:
                    raise ValueError(
                        f"balanced plan: keep = {ratio} of {rows.size} runs puts every example in "
                        f"{m} runs, leaving no {'in' if m == 0 else 'out'}-runs; use more runs or another keep"
                    )
                # Each column gets a random ranking of the group's runs; the m lowest train on it.
                rank = rng.random((rows.size, n)).argsort(axis=0).argsort(axis=0)
                masks[rows] = _even_rows(rank < m, rng)
            else:
                size = int(round(ratio * n))
                if size == 0:
                    raise ValueError(f"keep = {ratio} of {n} examples gives empty subsets")
                for row in rows:
                    masks[row, rng.choice(n, size=size, replace=False)] = True
        empty = np.flatnonzero(~masks.any(axis=1))
        if empty.size:
            raise ValueError(f"runs {empty[:5].tolist()} have empty subsets; use a larger keep or more examples")
        if repeats > 1:
            masks, run_ratio = np.repeat(masks, repeats, axis=0), np.repeat(run_ratio, repeats)
        r *= repeats
        masks.flags.writeable = False
        run_ratio.flags.writeable = False
        self._masks = masks
        self._ratios = run_ratio
        self.n_examples = n
        self.n_runs = r
        self.keep = ratio_list[0] if ratios is None else None
        self.ratios = tuple(ratio_list)
        self.balanced = bool(balanced) and not poisson
        self.independent = poisson
        self.seed = seed
        self.repeats = repeats

    @classmethod
    def from_masks(cls, masks: Any, *, seed: int = 0) -> SubsetPlan:
        """A plan of given training subsets (a removal curve's, a custom design).

        Parameters
        ----------
        masks : array-like of bool, shape (R, N)
            ``masks[r, i]`` True when run ``r`` trains on example ``i``; every run needs at
            least one example. All-True rows are allowed (runs on the full set).
        seed : int, default 0
            Recorded with the plan (:meth:`as_dict`); the masks are not drawn.

        Returns
        -------
        SubsetPlan
            ``subset_ratios`` are the subsets' fractions of N; ``keep`` is None and
            ``balanced`` False.

        Raises
        ------
        TypeError
            Masks that are not bool (or 0/1 integers).
        ValueError
            Not 2-D, no runs or examples, or a run with an empty subset.

        Examples
        --------
        >>> SubsetPlan.from_masks([[1, 1, 0], [1, 1, 1]]).subset_ratios.round(2).tolist()
        [0.67, 1.0]
        """
        m = np.array(as_mask(masks, "masks", ndim=2), dtype=np.bool_)
        if m.shape[0] == 0 or m.shape[1] == 0:
            raise ValueError(f"masks: expected at least one run and one example, got shape {m.shape}")
        empty = np.flatnonzero(~m.any(axis=1))
        if empty.size:
            raise ValueError(f"masks: runs {empty[:5].tolist()} have empty subsets")
        plan = cls.__new__(cls)
        ratios = m.mean(axis=1)
        for a in (m, ratios):
            a.flags.writeable = False
        plan._multiplicities = None
        plan._masks, plan._ratios = m, ratios
        plan.n_runs, plan.n_examples = m.shape
        plan.keep = None
        plan.ratios = tuple(sorted(set(ratios.tolist())))
        plan.balanced = False
        plan.independent = False
        plan.seed = check_int(seed, "seed", 0)
        plan.repeats = 1
        return plan

    def _init_bootstrap(self, n: int, r: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        mult = np.zeros((r, n), dtype=np.uint16)
        for row in range(r):
            # A count above 65535 would need N > 65535 and odds far below 1e-100.
            mult[row] = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.uint16)
        masks = mult > 0
        for a in (mult, masks):
            a.flags.writeable = False
        self._multiplicities = mult
        self._masks = masks
        self._ratios = np.ones(r)
        self._ratios.flags.writeable = False
        self.n_examples, self.n_runs = n, r
        self.keep = None
        self.ratios = (1.0,)
        self.balanced = False
        self.independent = False
        self.seed = seed

    @property
    def bootstrap(self) -> bool:
        """Whether runs draw bootstrap samples (see :attr:`multiplicities`)."""
        return self._multiplicities is not None

    @property
    def multiplicities(self) -> npt.NDArray[np.uint16] | None:
        """(R, N) read-only uint16 draw counts of a bootstrap plan; None for subset plans."""
        return self._multiplicities

    def epoch_size(self, r: int) -> int:
        """Examples run ``r`` sees per epoch: its subset size, or N draws for a bootstrap run."""
        m = self._multiplicities
        return int(self._masks[r].sum()) if m is None else int(m[r].sum(dtype=np.int64))

    def epoch_examples(self, r: int) -> npt.NDArray[np.int64]:
        """The example indices of one epoch of run ``r``, each repeated by its multiplicity."""
        idx = np.flatnonzero(self._masks[r])
        m = self._multiplicities
        return idx if m is None else np.repeat(idx, m[r, idx])

    @property
    def masks(self) -> npt.NDArray[np.bool_]:
        """(R, N) read-only bool masks."""
        return self._masks

    @property
    def subset_ratios(self) -> npt.NDArray[np.float64]:
        """(R,) the nominal subset ratio of each run."""
        return self._ratios

    @property
    def groups(self) -> npt.NDArray[np.int64]:
        """(R,) the subset of each run: ``r // repeats``."""
        return np.arange(self.n_runs, dtype=np.int64) // self.repeats

    @property
    def run_ids(self) -> list[str]:
        """Run ids ``run-000000``, ``run-000001``, ... (sortable, plan order)."""
        return [f"run-{r:06d}" for r in range(self.n_runs)]

    def __len__(self) -> int:
        return self.n_runs

    def __getitem__(self, r: int) -> npt.NDArray[np.bool_]:
        row: npt.NDArray[np.bool_] = self._masks[r]
        return row

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable description (kept in a store's metadata).

        Returns
        -------
        dict of str to object
            ``n_examples``, ``n_runs``, ``ratios``, ``balanced``, ``seed`` (and
            ``bootstrap: True`` for a bootstrap plan, ``independent: True`` for a Poisson one).
        """
        out = {
            "n_examples": self.n_examples,
            "n_runs": self.n_runs,
            "ratios": list(self.ratios),
            "balanced": self.balanced,
            "seed": self.seed if isinstance(self.seed, (int, np.integer)) else repr(self.seed),
        }
        if self.repeats > 1:
            out["repeats"] = self.repeats
        if self.independent:
            out["independent"] = True
        return out | {"bootstrap": True} if self.bootstrap else out

    def __repr__(self) -> str:
        sizes = self._masks.sum(axis=1)
        if self.bootstrap:
            return (
                f"SubsetPlan(n_examples={self.n_examples}, n_runs={self.n_runs}, bootstrap=True, "
                f"distinct examples per run {sizes.min()}..{sizes.max()})"
            )
        return (
            f"SubsetPlan(n_examples={self.n_examples}, n_runs={self.n_runs}, ratios={list(self.ratios)}, "
            f"balanced={self.balanced}{', independent=True' if self.independent else ''}, "
            f"subset sizes {sizes.min()}..{sizes.max()})"
        )
