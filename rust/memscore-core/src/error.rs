//! The one error type of the core crate. Every fallible function of every engine returns
//! [`Result`]; the binding maps each variant to one Python exception (see `memscore-py`'s
//! `errors.rs`):
//!
//! | variant | Python |
//! |---|---|
//! | [`Error::Invalid`] | `ValueError` |
//! | [`Error::Corpus`] | `memscore.CorpusError` |
//! | [`Error::Io`] | `OSError` |
//! | [`Error::Index`] | `memscore.CorpusIndexError` |
//! | [`Error::Memory`] | `MemoryError` |
//! | [`Error::Cancelled`] | `KeyboardInterrupt` |

use std::collections::TryReserveError;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// An argument had the wrong shape, length or value, or sizes overflow.
    Invalid(String),
    /// A corpus shard cannot be read or parsed: file, 1-based line (0 when unknown), message.
    Corpus { path: String, line: u64, msg: String },
    /// A corpus index on disk is damaged or inconsistent: the file and what is wrong.
    Index { path: String, msg: String },
    /// An I/O error outside a corpus (path empty when unknown).
    Io { path: String, kind: std::io::ErrorKind, msg: String },
    /// An allocation failed: what it was for and how many bytes it asked (0 when unknown).
    Memory { what: String, bytes: u128 },
    /// The caller asked the work to stop (Ctrl-C).
    Cancelled,
}

/// `Result<T>` of the core; a second parameter keeps the std meaning (`Result<T, String>`).
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corpus(path: &str, line: u64, msg: impl Into<String>) -> Self {
        Error::Corpus { path: path.to_string(), line, msg: msg.into() }
    }

    pub(crate) fn index(path: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Index { path: path.into(), msg: msg.into() }
    }

    /// An allocation of `bytes` bytes for `what` failed.
    pub fn memory(what: impl Into<String>, bytes: u128) -> Self {
        Error::Memory { what: what.into(), bytes }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(msg) => write!(f, "{msg}"),
            Error::Corpus { path, line, msg } if path.is_empty() => match line {
                0 => write!(f, "{msg}"),
                l => write!(f, "line {l}: {msg}"),
            },
            Error::Corpus { path, line, msg } if *line > 0 => write!(f, "{path}, line {line}: {msg}"),
            Error::Corpus { path, msg, .. } => write!(f, "{path}: {msg}"),
            Error::Index { path, msg } => write!(f, "corpus index {path}: {msg}"),
            Error::Io { path, msg, .. } if path.is_empty() => write!(f, "{msg}"),
            Error::Io { path, msg, .. } => write!(f, "{path}: {msg}"),
            Error::Memory { what, bytes: 0 } => write!(f, "cannot allocate memory for {what}"),
            Error::Memory { what, bytes } => write!(f, "cannot allocate {} for {what}", human_bytes(*bytes)),
            Error::Cancelled => write!(f, "interrupted"),
        }
    }
}

fn human_bytes(b: u128) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {} ({b} bytes)", UNITS[u])
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io { path: String::new(), kind: e.kind(), msg: e.to_string() }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corpus { path: String::new(), line: e.line() as u64, msg: format!("invalid JSON ({e})") }
    }
}

impl From<TryReserveError> for Error {
    fn from(e: TryReserveError) -> Self {
        Error::Memory { what: format!("a buffer ({e})"), bytes: 0 }
    }
}

/// `tokenizers::Error` is a boxed error (`Box<dyn Error + Send + Sync>`).
impl From<Box<dyn std::error::Error + Send + Sync>> for Error {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Error::Invalid(format!("tokenizer: {e}"))
    }
}

impl From<rayon::ThreadPoolBuildError> for Error {
    fn from(e: rayon::ThreadPoolBuildError) -> Self {
        Error::Invalid(format!("cannot start the thread pool: {e}"))
    }
}

/// Return `Error::Invalid` with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::error::Error::Invalid(format!($($arg)+)));
        }
    };
}
pub(crate) use ensure;

/// `rows * cols`, or `Error::Invalid` naming the shape when it overflows `usize`.
pub fn checked_size(name: &str, rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| Error::Invalid(format!("{name}: shape ({rows}, {cols}) overflows usize")))
}

/// Check that a row-major buffer holds exactly `rows * cols` items.
pub(crate) fn check_len(name: &str, len: usize, rows: usize, cols: usize) -> Result<()> {
    let want = checked_size(name, rows, cols)?;
    ensure!(len == want, "{name}: expected {want} values for shape ({rows}, {cols}), got {len}");
    Ok(())
}

/// A vector of `n` copies of `value`, allocated fallibly: `Error::Memory` naming `what`
/// and the bytes asked when the allocator refuses (or the size overflows `isize`).
///
/// Large vectors are asked to be backed by 2 MiB pages (Linux, where transparent huge
/// pages are on `madvise`) and are filled by the thread pool. The fill is their first
/// touch, and page faults cost more than the writes: a 400 MB influence matrix spent
/// ~90 ms of a 1 s call clearing 4 KiB pages on one thread. Lookup tables read at random
/// (the n-gram tables) also miss the TLB less on large pages.
pub fn try_filled<T: Clone + Send + Sync>(what: &str, n: usize, value: T) -> Result<Vec<T>> {
    use rayon::prelude::*;
    let size = std::mem::size_of::<T>().max(1);
    if n.saturating_mul(size) < HUGE_PAGE {
        let mut v = try_with_capacity(what, n)?;
        v.resize(n, value);
        return Ok(v);
    }
    // Room to start the advised range on a 2 MiB boundary, for vectors large enough that
    // the extra 2 MiB is small next to them; smaller ones advise the whole pages inside.
    let pad = if n.saturating_mul(size) >= 8 * HUGE_PAGE { HUGE_PAGE / size } else { 0 };
    let mut v = try_with_capacity(what, n.saturating_add(pad))?;
    advise_huge_pages(&mut v);
    if n.saturating_mul(size) < PARALLEL_FILL_BYTES {
        v.resize(n, value);
        return Ok(v);
    }
    v.spare_capacity_mut()[..n].par_chunks_mut(PARALLEL_FILL_CHUNK).for_each(|c| {
        c.iter_mut().for_each(|x| {
            x.write(value.clone());
        })
    });
    // SAFETY: the first `n` items were all written just above.
    unsafe { v.set_len(n) };
    Ok(v)
}

const HUGE_PAGE: usize = 2 << 20;
/// From this size on [`try_filled`] fills in parallel, in chunks of this many items.
const PARALLEL_FILL_BYTES: usize = 8 << 20;
const PARALLEL_FILL_CHUNK: usize = 1 << 16;

/// Ask Linux to back the whole 2 MiB pages inside `v`'s allocation with huge pages.
fn advise_huge_pages<T>(v: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        let p = v.as_mut_ptr() as usize;
        let start = p.next_multiple_of(HUGE_PAGE);
        let end = (p + v.capacity() * std::mem::size_of::<T>()) & !(HUGE_PAGE - 1);
        if end > start {
            // SAFETY: the range lies inside this vector's own allocation; madvise only
            // changes how its not yet touched pages are backed. Failure is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// An empty vector with room for `n` items, allocated fallibly (see [`try_filled`]).
pub fn try_with_capacity<T>(what: &str, n: usize) -> Result<Vec<T>> {
    let bytes = n as u128 * std::mem::size_of::<T>() as u128;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::memory(what, bytes))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_allocation_is_a_memory_error() {
        let e = try_filled::<u64>("test buffer", usize::MAX / 4, 0).unwrap_err();
        assert!(matches!(e, Error::Memory { .. }), "{e:?}");
        assert!(e.to_string().contains("test buffer"));
        assert!(checked_size("m", usize::MAX, 2).is_err());
    }

    #[test]
    fn filled_vectors_hold_n_copies_on_every_path() {
        // Below the huge-page size, between it and the parallel fill, and above both.
        for n in [0usize, 1, 1000, HUGE_PAGE / 8 + 3, PARALLEL_FILL_BYTES / 8 + PARALLEL_FILL_CHUNK / 2 + 1] {
            let v = try_filled("test buffer", n, 7.5f64).unwrap();
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 7.5), "n = {n}");
        }
    }

    #[test]
    fn conversions() {
        let e: Error = std::io::Error::new(std::io::ErrorKind::NotFound, "gone").into();
        assert!(matches!(e, Error::Io { kind: std::io::ErrorKind::NotFound, .. }));
        let e: Error = serde_json::from_str::<serde_json::Value>("{").unwrap_err().into();
        assert!(matches!(e, Error::Corpus { .. }));
        assert_eq!(Error::corpus("a.jsonl", 3, "bad").to_string(), "a.jsonl, line 3: bad");
    }
}
