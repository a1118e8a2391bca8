//! memscore's thread pool and its policy, and the cancel flag long kernels poll.
//!
//! - One process-wide rayon pool, built lazily with [`default_threads`] threads: the
//!   `MEMSCORE_NUM_THREADS` environment variable when it holds a valid count, else the
//!   machine's available parallelism. An invalid variable (not a number, 0, above the cap)
//!   falls back to the default; it never fails a call.
//! - Thread counts must lie in `1..=`[`max_threads`] (`4 x available_parallelism`): the same
//!   rule for [`set_num_threads`], the per-call `threads` of [`resolve`], and the variable.
//!   Anything else is [`Error::Invalid`] with a message naming the bound.
//! - After `fork` (torch DataLoader workers fork) the child inherits the pool object but
//!   none of its threads: a pid change rebuilds the pool with the same thread count, as
//!   huggingface/tokenizers guards its own pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// How many times the machine's parallelism a thread count may be.
pub const MAX_THREADS_FACTOR: usize = 4;

/// The environment variable that sets the default thread count.
pub const ENV_VAR: &str = "MEMSCORE_NUM_THREADS";

/// Logical CPUs available to this process (1 when unknown).
pub fn available_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The largest thread count accepted: `4 x available_parallelism()`.
pub fn max_threads() -> usize {
    MAX_THREADS_FACTOR.saturating_mul(available_parallelism())
}

/// `n` if it is a valid thread count (`1..=max_threads()`), else `Error::Invalid` saying
/// so; `what` names the argument in the message.
pub fn check_threads(what: &str, n: usize) -> Result<usize> {
    let max = max_threads();
    if n == 0 || n > max {
        return Err(Error::Invalid(format!(
            "{what}: expected a thread count between 1 and {max} ({MAX_THREADS_FACTOR} x the {} available CPUs), got {n}",
            available_parallelism()
        )));
    }
    Ok(n)
}

/// `MEMSCORE_NUM_THREADS` when it holds a valid count, else the available parallelism.
pub fn default_threads() -> usize {
    std::env::var(ENV_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .and_then(|n| check_threads(ENV_VAR, n).ok())
        .unwrap_or_else(available_parallelism)
}

struct Pool {
    pid: u32,
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn build(threads: usize, name: &'static str) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))
}

/// memscore's pool, built on first use and rebuilt in a forked child.
pub fn pool() -> Result<Arc<rayon::ThreadPool>> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    match guard.as_ref() {
        Some(p) if p.pid == pid => Ok(p.pool.clone()),
        other => {
            let threads = other.map_or_else(default_threads, |p| p.threads);
            let pool = Arc::new(build(threads, "memscore")?);
            *guard = Some(Pool { pid, threads, pool: pool.clone() });
            Ok(pool)
        }
    }
}

/// Set the number of threads of memscore's pool (checked with [`check_threads`]).
pub fn set_num_threads(n: usize) -> Result<()> {
    let n = check_threads("set_num_threads", n)?;
    let pool = Arc::new(build(n, "memscore")?);
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    *guard = Some(Pool { pid: std::process::id(), threads: n, pool });
    Ok(())
}

/// Number of threads of memscore's pool.
pub fn get_num_threads() -> Result<usize> {
    Ok(pool()?.current_num_threads())
}

/// The pool a call runs on: memscore's pool, or a temporary one of `threads` threads
/// (checked with [`check_threads`]).
pub fn resolve(threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>> {
    match threads {
        None => pool(),
        Some(t) => Ok(Arc::new(build(check_threads("threads", t)?, "memscore-call")?)),
    }
}

/// Run `f` on the pool [`resolve`] picks for `threads`.
pub fn install<T: Send>(threads: Option<usize>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    resolve(threads)?.install(f)
}

/// A cancel flag: the caller sets it (on Ctrl-C), long kernels poll it between blocks of
/// work and stop with [`Error::Cancelled`].
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the work to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Error::Cancelled)` once the flag is set.
    #[inline]
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_are_bounded() {
        assert!(check_threads("t", 0).is_err());
        assert!(check_threads("t", max_threads() + 1).is_err());
        assert!(check_threads("t", usize::MAX).is_err());
        assert_eq!(check_threads("t", 1).unwrap(), 1);
        assert!(resolve(Some(0)).is_err());
        assert_eq!(install(Some(2), || Ok(rayon::current_num_threads())).unwrap(), 2);
        let msg = check_threads("threads", 0).unwrap_err().to_string();
        assert!(msg.contains("between 1 and"), "{msg}");
    }

    #[test]
    fn cancel_flag() {
        let c = Cancel::new();
        assert!(c.check().is_ok());
        c.cancel();
        assert_eq!(c.check(), Err(Error::Cancelled));
    }
}
