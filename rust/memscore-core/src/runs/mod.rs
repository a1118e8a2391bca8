//! Scores across training runs: per-example sums (memorization, hold-out accuracy),
//! pairwise influence (full matrix or streaming top-k), LiRA membership scores, and
//! the logit-scaled confidence they are computed from.

pub mod confidence;
pub mod influence;
pub mod lasso;
pub mod lira;
pub mod masked_sums;
pub mod popcount;
pub mod rmia;
pub mod sums;
pub mod topk;

/// Columns handled by one parallel task in the row-streaming kernels.
pub(crate) const COL_CHUNK: usize = 4096;
