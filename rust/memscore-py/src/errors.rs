//! The one conversion from the core's error to a Python exception, and the one helper
//! every heavy binding goes through ([`enter`]): release the GIL, run on the right pool,
//! turn Ctrl-C into a cancel, map the error.

use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use memscore_core::pool::{self, Cancel};
use memscore_core::Error;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyValueError};
use pyo3::prelude::*;

/// How often the waiting thread looks for a pending signal (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// `memscore.errors.<class>(msg)`, or the error met importing it.
fn memscore_error(class: &str, msg: String) -> PyErr {
    Python::attach(|py| {
        match py.import("memscore.errors").and_then(|m| m.getattr(class)).and_then(|c| c.call1((msg,))) {
            Ok(v) => PyErr::from_value(v),
            Err(err) => err,
        }
    })
}

/// The Python exception of a core error:
/// Invalid → ValueError, Corpus → memscore.CorpusError, Index → memscore.CorpusIndexError, Io → OSError (the subclass of its
/// kind, e.g. FileNotFoundError), Memory → MemoryError, Cancelled → KeyboardInterrupt.
pub(crate) fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Invalid(_) => PyValueError::new_err(msg),
        Error::Corpus { .. } => memscore_error("CorpusError", msg),
        Error::Index { .. } => memscore_error("CorpusIndexError", msg),
        Error::Io { kind, .. } => std::io::Error::new(kind, msg).into(),
        Error::Memory { .. } => PyMemoryError::new_err(msg),
        Error::Cancelled => PyKeyboardInterrupt::new_err(msg),
    }
}

/// `Result` of the core → `PyResult`, for the few calls that do not go through [`enter`].
pub(crate) trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for memscore_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Run `f` with the GIL released, on memscore's pool (`threads = None`) or on a temporary
/// pool of `threads` threads (checked by the core's thread policy), and map its error.
///
/// The work runs on a scoped thread while this thread waits, re-attaching every 100 ms to
/// run Python's signal handlers: on a pending signal (Ctrl-C) it sets the cancel flag `f`
/// receives, waits for the kernel to stop, and raises the handler's exception
/// (KeyboardInterrupt).
pub(crate) fn enter<T: Send>(
    py: Python<'_>,
    threads: Option<usize>,
    f: impl FnOnce(&Cancel) -> memscore_core::Result<T> + Send,
) -> PyResult<T> {
    enter_sized(py, threads, usize::MAX, f)
}

/// Work (in the caller's units: bits, values) below which [`enter_sized`] runs the kernel
/// on this thread: it ends in well under a millisecond, so there is no Ctrl-C to wait for,
/// and spawning the watcher thread would cost more than the work.
const INLINE_WORK: usize = 1 << 20;

/// Work below which [`enter_sized`] runs the kernel on [`CALLER_POOL`]: handing it to the
/// sleeping threads of memscore's pool and back cost 15-30 us (`value_range` of 256
/// values took 16.7 us, `banzhaf` at R=256, N=500 spent 30 of its 70 us in the core call),
/// more than the work itself. Results do not depend on the number of threads.
const CALLER_WORK: usize = 1 << 16;

thread_local! {
    /// A one-thread pool whose only worker is the calling thread itself: `install` runs the
    /// kernel right here and its parallel loops run sequentially, with no hand-off. (One
    /// per calling thread; rayon never frees such a pool's registry, a few KB per thread
    /// that ever makes a small call.) None where this thread already belongs to a rayon
    /// pool.
    static CALLER_POOL: Option<rayon::ThreadPool> =
        rayon::ThreadPoolBuilder::new().num_threads(1).use_current_thread().build().ok();
}

/// [`enter`] for a kernel of about `work` units: small ones skip the watcher thread.
pub(crate) fn enter_sized<T: Send>(
    py: Python<'_>,
    threads: Option<usize>,
    work: usize,
    f: impl FnOnce(&Cancel) -> memscore_core::Result<T> + Send,
) -> PyResult<T> {
    // (An explicit `threads` is checked and honoured by the paths below.)
    if work < CALLER_WORK && threads.is_none() {
        let cancel = Cancel::new();
        return py
            .detach(|| {
                CALLER_POOL.with(|own| match own {
                    Some(own) => own.install(|| f(&cancel)),
                    None => pool::resolve(None).and_then(|p| p.install(|| f(&cancel))),
                })
            })
            .py();
    }
    let pool = pool::resolve(threads).py()?;
    if work < INLINE_WORK {
        let cancel = Cancel::new();
        return py.detach(|| pool.install(|| f(&cancel))).py();
    }
    let cancel = Cancel::new();
    let mut interrupt: Option<PyErr> = None;
    let res = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = channel();
            let (pool, cancel) = (&pool, &cancel);
            s.spawn(move || {
                let _ = tx.send(pool.install(|| f(cancel)));
            });
            loop {
                match rx.recv_timeout(SIGNAL_POLL) {
                    Ok(r) => return Some(r),
                    // The worker panicked; `scope` re-raises the panic when it returns.
                    Err(RecvTimeoutError::Disconnected) => return None,
                    Err(RecvTimeoutError::Timeout) => {
                        if interrupt.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                interrupt = Some(e);
                                cancel.cancel();
                            }
                        }
                    }
                }
            }
        })
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    match res {
        Some(r) => r.py(),
        None => Err(PyValueError::new_err("internal error: the worker thread stopped without a result")),
    }
}
