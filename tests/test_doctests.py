"""The Examples sections of the public docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import importlib.util

import pytest

MODULES = [
    "memscore",
    "memscore.errors",
    "memscore._validate",
    "memscore._io",
    "memscore._stats",
    "memscore.executors.local",
    "memscore.executors.ray",
    "memscore.executors.resolve",
    "memscore.runs.scores",
    "memscore.runs.outcomes",
    "memscore.runs.membership",
    "memscore.runs.bits",
    "memscore.runs.proxies",
    "memscore.runs.datasets",
    "memscore.runs.report",
    "memscore.runs.store.memorization",
    "memscore.runs.store.influence",
    "memscore.runs.datamodels",
    "memscore.runs.lds",
    "memscore.runs.distillation",
    "memscore.runs.store.attribution",
    "memscore.runs.reliability",
    "memscore.runs.forecast",
    "memscore.runs.store.reliability",
    "memscore.train.plan",
    "memscore.audit.bounds",
    "memscore.audit.gdp",
    "memscore.audit.one_run",
    "memscore.audit.canaries",
    "memscore.audit.per_example",
    "memscore.knn.index",
    "memscore.knn.resmem",
    "memscore.knn.embeddings",
    "memscore.ngrams.counting",
    "memscore.ngrams.corpus",
    "memscore.taskgram.metrics",
    "memscore.taskgram.tglm",
    "memscore.taskgram.pipeline",
    "memscore.reference",
    "memscore.cluster",
]
NEEDS_TORCH = [
    "memscore._torch",
    "memscore.train.driver",
    "memscore.train.models",
    "memscore.train.config",
    "memscore.train.ensemble",
    "memscore.train.inputs",
    "memscore.lm.extract",
    "memscore.lm.scoring",
    "memscore.lm.load",
    "memscore.lm._blocks",
    "memscore.lm.pythia",
]


@pytest.mark.parametrize("name", MODULES + NEEDS_TORCH)
def test_docstring_examples(name):
    if name in NEEDS_TORCH and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch")
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False, raise_on_error=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
