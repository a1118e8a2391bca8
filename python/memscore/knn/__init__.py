"""The kNN engine: exact k-nearest-neighbour search (:class:`KnnIndex`, :func:`knn`), ResMem
(:class:`ResMem`, :func:`tune_resmem`) and penultimate-layer embeddings
(:func:`extract_embeddings`), and exact KNN-Shapley values (:func:`knn_shapley`)."""

from __future__ import annotations

from .embeddings import extract_embeddings
from .index import KnnIndex, knn
from .resmem import ResMem, tune_resmem
from .shapley import knn_shapley

__all__ = ["KnnIndex", "ResMem", "extract_embeddings", "knn", "tune_resmem", "knn_shapley"]
