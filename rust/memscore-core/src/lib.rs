//! memscore-core: the algorithms behind memscore, with no Python in sight.
//!
//! Every kernel takes plain row-major slices plus their shape, validates what it
//! cannot trust (lengths, counts), returns [`Result`] for anything that can fail,
//! and never panics on user data. Parallel work runs on whatever rayon pool the
//! caller installs ([`pool`] holds memscore's own pool and its thread-count policy; the
//! Python binding installs it). Large allocations are fallible ([`Error::Memory`]) and
//! long kernels poll a [`pool::Cancel`] flag.
//!
//! Conventions (shared with the Python package):
//! - `masks` is `(R, N)` run-major: `masks[r * n + i]` is true when run `r` trained on example `i`.
//! - outcomes are `(R, N)` (training examples) or `(R, T)` (test examples).
//! - influence is `(T, N)`: `infl[j * n + i]` is the influence of train example `i` on test `j`.
//! - undefined estimates are NaN; ties break toward the lower index.

pub mod bits;
pub mod cpu;
pub mod error;
pub mod knn;
pub mod ngram;
pub mod pool;
pub mod runs;
pub mod sa;

pub use error::{Error, Result};
