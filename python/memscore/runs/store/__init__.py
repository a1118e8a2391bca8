"""A run store: the masks and outcomes of many training runs, on disk, in open formats.

A :class:`RunStore` is a directory that numpy (and polars, for the score tables) reads
without memscore::

    <store>/
      manifest.json          {"format": "memscore-runstore", "version": 1, "n_train", "n_test",
                              "n_classes", "has_train_labels", "has_test_labels",
                              "metadata", "created"}
      train_labels.npy       (n_train,) int64, present when has_train_labels
      test_labels.npy        (n_test,) int64, present when has_test_labels
      runs/<run_id>.npz      one file per training run (``np.savez``, uncompressed):
        mask_bits            np.packbits(mask), uint8; mask is (n_train,) bool, True = trained on
        train_correct_bits   np.packbits(correct) of the run's prediction on each train example
        test_correct_bits    the same on the test examples
        train_phi, test_phi  (n,) float32 logit-scaled confidence of the true label
        train_logits         (n_train, C) float32, only when added with keep_logits=True
        test_logits          (n_test, C) float32, idem
        train_pred, test_pred  (n,) int32 predicted class (argmax of the logits), when
                             the run was added from logits
        train_phi_views, test_phi_views  (n, K) float32 confidences on K augmented query
                             views (LiRA), when added with *_phi_views
        multiplicity         (n_train,) uint16 bootstrap draw counts (> 0 exactly where the
                             mask is True), when added with multiplicity= (Data-OOB)
        snap_epochs          (S,) int64 epochs of the training snapshots, when recorded
        snap_<split>_correct_bits  (S, ceil(n/8)) uint8, np.packbits(correct, axis=1)
        snap_<split>_loss, snap_<split>_el2n, snap_<split>_grand
                             (S, n) float32 per-example cross-entropy, EL2N and gradient
                             norm at each snapshot (each optional)
        meta                 uint8 array holding UTF-8 JSON: run_id, subset_ratio, metadata,
                             n_train, n_test, n_classes (when logits were given), fields,
                             arrays, created, and "sha256", the hex digest of the bytes of
                             every other array concatenated in sorted name order

Every outcome array is optional; ``mask_bits`` and ``meta`` are always there. Unpack a bit
array with ``np.unpackbits(bits, count=n).astype(bool)``.

Integrity: every read opens the run file without blocking (anything but a regular file
is refused), checks its meta's n_train / n_test / n_classes against the manifest, each
array's shape and dtype, and the zip CRC-32 of the arrays it reads; any damage (a bad
zip, a bad CRC, a flipped byte anywhere) raises :class:`~memscore.StoreError` naming the
run file instead of returning wrong numbers. :meth:`RunStore.verify` checks every array of
every run against the field table, including the sha256, and lists problems.

Writes are atomic. A run is written to ``runs/.tmp-<uuid>.npz``, flushed and fsynced, then
hard-linked to its final name (``os.link`` fails if the name exists, so two writers can
never overwrite each other's run) and the temporary name removed: a crash leaves at most a
``.tmp-*`` file, which listings ignore, :meth:`RunStore.verify` reports and
:meth:`RunStore.clean_tmp` removes once older than a grace period. A store is created in
a temporary directory beside its final name and renamed into place. Many processes,
on one machine or several sharing a file system, can add runs to one store concurrently.
Default run ids start with the time in nanoseconds, so **runs are always listed sorted by
run id**, which is insertion order for default ids; every array a store returns is indexed
by runs in that order. A store object reads the run list taken at open / create,
refreshed by :meth:`RunStore.refresh`; its own :meth:`RunStore.add_run` adds the new run
to it (other writers' runs appear at the next refresh).

The score methods stream over the runs in chunks, so their memory does not grow with the
number of runs (except :meth:`RunStore.influence` and :meth:`RunStore.lira`, which need all
runs at once, bit-packed); :meth:`RunStore.scores` reads each run file once and feeds every
column from that read. Score tables are polars DataFrames:
``store.scores().write_parquet(path)``.

Every scan takes ``executor=`` (:func:`memscore.executors.as_executor`: local, threads or
Ray) and gives identical results under each: it is split into tasks of run ranges (or,
for influence, of test examples), each task opens the store by path and reads its range,
and the driver merges their results in run order (:mod:`.tasks`).

Modules: :mod:`.format` (layout, manifest, the one table of run-file fields), :mod:`.npz`
(reading one run file), :mod:`.scan` (reading runs, streamed statistics), :mod:`.write`
(create, add runs), :mod:`.verify` (integrity, ``clean_tmp``), :mod:`.merge`, the scans'
executor seam (:mod:`.tasks`) and accumulators (:mod:`.accumulate`), and the
:class:`RunStore` class in :mod:`.store` with its reading (:mod:`.reading`) and scoring
methods, one module per concept: :mod:`.memorization`, :mod:`.influence`,
:mod:`.membership` (LiRA, RMIA), :mod:`.valuation` (Banzhaf, Data-OOB), :mod:`.snapshots`
and :mod:`.attribution`.
"""

from __future__ import annotations

from ...errors import RunNotFoundError
from .store import RunStore

__all__ = ["RunNotFoundError", "RunStore"]
