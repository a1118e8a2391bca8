//! One error type for the core crate; the binding maps each variant to a Python exception.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// An argument had the wrong shape, length or value (maps to `ValueError`).
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// Return `Error::Invalid` with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::error::Error::Invalid(format!($($arg)+)));
        }
    };
}
pub(crate) use ensure;

/// Check that a row-major buffer holds exactly `rows * cols` items.
pub(crate) fn check_len(name: &str, len: usize, rows: usize, cols: usize) -> Result<()> {
    let want = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::Invalid(format!("{name}: shape ({rows}, {cols}) overflows usize")))?;
    ensure!(len == want, "{name}: expected {want} values for shape ({rows}, {cols}), got {len}");
    Ok(())
}
