//! Limits in a TOML file, applied by uid to the running throttles of
//! [`registry::global`](crate::registry::global) (the attribute's statics, and builders
//! given `.registry(registry::global())`), reloaded when the file
//! changes (feature `limits-file`).
//!
//! ```toml
//! # limits.toml: every key is optional; a throttle left out keeps what the code says.
//! [throttles."api:data"]
//! rate = "200/min"                       # any rate string: "5 per 10s", "unlimited", ...
//! strategy = "token_bucket(burst = 300)" # any strategy string (see below)
//! enabled = true
//! shadow = false                         # see `throttle::shadow`
//!
//! [throttles."api:search"]
//! enabled = false
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use throttle::HttpThrottle;
//! use throttle::limits::LimitsFile;
//!
//! let api = HttpThrottle::builder("api:data").rate("100/min").build()?;
//! // Build (or `.get()`) every throttle the file names first: it applies to live ones.
//! let limits = LimitsFile::new("limits.toml");
//! limits.load()?; // at startup: a bad file is an error
//! let watcher = limits.watch(Duration::from_secs(5)); // then on every change
//! # let _ = (api, watcher); Ok(()) }
//! ```
//!
//! # Rules
//!
//! - **All or nothing.** A load reads the whole file, checks every throttle in it, then
//!   applies everything. A file that does not parse, names a uid no running throttle
//!   has, or has a bad rate, an unknown strategy or an unknown key is refused with an
//!   error that gives the line and column, the uid and the field
//!   (`limits.toml:4:8: throttle "api:data", field `rate`: unknown time unit `mins`;
//!   expected one of ...`), and the running limits stay as they were. The watcher logs
//!   a refusal (once per version of the file) and keeps the previous limits.
//! - **The file is a set of overrides.** A field it sets replaces the code's value; a
//!   field a later version leaves out (or a throttle it drops) goes back to the code's
//!   value. Applying a file again is a no-op.
//! - **The strategy changes at runtime**, and no state one strategy wrote is ever read
//!   by another: a throttle running a strategy of another kind than the code's (say
//!   `token_bucket` where the code says `fixed_window`) keeps its state under keys of
//!   its own, the usual key with `#` and a letter per kind at the end
//!   (`throttle:api:data:{ip=1.2.3.4}:default#t`). So every client starts the new
//!   strategy with a full quota, in memory and on Redis (whose script is chosen by
//!   strategy), and the state of the old one is left to expire by itself. Going back
//!   to the code's kind (the key dropped, or the code's strategy written) reads the
//!   untagged keys again, as the code's strategy left them, aged by the time spent
//!   away. Other parameters of the same kind (`token_bucket(burst = 50)` where the code
//!   says `burst = 300`) keep the keys and their state, as a rate change does. A hit
//!   taken under one strategy is refunded to it, whatever runs by then.
//! - **Shadow mode** (see [`shadow`](crate::shadow)) is the throttle's own switch:
//!   `shadow = true` lets every request through while deciding and counting as usual,
//!   `false` enforces, and a version without the key gives the switch back to what it
//!   was before the file set it. The process-wide switch
//!   ([`shadow::set_global`](crate::shadow::set_global)) still overrides it.
//! - Throttles built by `#[throttle]` exist from their first request; call the
//!   generated static's `.get()` at startup so the file can name them.
//! - Each throttle's rate and strategy change atomically, the file as a whole does
//!   not: a request that arrives during a load may see one throttle's new rate and
//!   another's old one.

mod apply;
mod error;
mod parse;

pub use error::{LimitsError, LimitsErrorKind};

use parking_lot::Mutex;
use parse::Source;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// The largest limits file read, in bytes.
const MAX_FILE_LEN: u64 = 1 << 20;

/// A limits file: [`load`](Self::load) it at startup (and whenever you like), and
/// [`watch`](Self::watch) it for changes. Cheap to clone; clones share what was
/// applied. See the [module documentation](self) for the format and the rules.
#[derive(Clone)]
pub struct LimitsFile {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    originals: apply::Originals,
    /// The text of the last version read, applied or refused.
    last_seen: Option<Vec<u8>>,
}

impl LimitsFile {
    /// A limits file at `path`; nothing is read until [`load`](Self::load).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LimitsFile { inner: Arc::new(Inner { path: path.into(), state: Mutex::default() }) }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Reads the file and applies it now, all or nothing; returns how many throttles
    /// it names. A blocking read of a small local file: call it at startup, or from a
    /// signal handler or an admin route.
    pub fn load(&self) -> Result<usize, LimitsError> {
        let text = read(&self.inner.path)?;
        let mut state = self.inner.state.lock();
        let applied = self.apply(&mut state, &text);
        state.last_seen = Some(text);
        applied
    }

    /// Checks the file against the running throttles, as [`load`](Self::load) would,
    /// without applying anything (a dry run, e.g. before deploying a new version).
    pub fn check(&self) -> Result<usize, LimitsError> {
        let text = read(&self.inner.path)?;
        let source = self.source(&text)?;
        let specs = source.parse()?;
        Ok(apply::check_all(&source, specs)?.len())
    }

    fn source<'t>(&'t self, text: &'t [u8]) -> Result<Source<'t>, LimitsError> {
        let origin = self.inner.path.to_str().unwrap_or("limits file");
        match std::str::from_utf8(text) {
            Ok(text) => Ok(Source { origin, text }),
            Err(error) => {
                let source = Source { origin, text: std::str::from_utf8(&text[..error.valid_up_to()]).unwrap_or("") };
                let kind = LimitsErrorKind::Syntax("the file is not UTF-8".to_string());
                Err(source.error(Some(error.valid_up_to()), None, None, kind))
            }
        }
    }

    fn apply(&self, state: &mut State, text: &[u8]) -> Result<usize, LimitsError> {
        let source = self.source(text)?;
        let specs = source.parse()?;
        let named = state.originals.apply(&source, specs)?;
        crate::log::event!(info, "limits file {}: applied to {named} throttles", self.inner.path.display());
        Ok(named)
    }

    /// Polls the file every `every` on the current tokio runtime and applies each new
    /// version, all or nothing. A version that is refused is logged once and the
    /// previous limits stay; the next version is tried as usual. The task stops when
    /// the watcher is dropped.
    ///
    /// Polling reads the file (at most 1 MiB) and compares it with the last version,
    /// so no change is missed to a coarse modification time, and a half-written file
    /// is simply refused until it is complete.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn watch(&self, every: Duration) -> LimitsWatcher {
        let (status, receiver) = watch::channel(ReloadStatus::default());
        let file = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let text = match read_async(&file.inner.path).await {
                    Ok(text) => text,
                    Err(error) => {
                        file.refused(&status, error);
                        continue;
                    }
                };
                let mut state = file.inner.state.lock();
                if state.last_seen.as_deref() == Some(&text[..]) {
                    continue;
                }
                let applied = file.apply(&mut state, &text);
                state.last_seen = Some(text);
                drop(state);
                match applied {
                    Ok(_) => status.send_modify(|s| {
                        s.applied += 1;
                        s.last_error = None;
                    }),
                    Err(error) => file.refused(&status, error),
                }
            }
        });
        LimitsWatcher { task: task.abort_handle(), status: receiver }
    }

    /// Logs and publishes a refusal; the same error twice in a row (an unreadable file
    /// polled again) is reported once.
    fn refused(&self, status: &watch::Sender<ReloadStatus>, error: LimitsError) {
        let repeated = status.borrow().last_error.as_ref().is_some_and(|last| last.to_string() == error.to_string());
        if !repeated {
            crate::log::event!(error, "limits file refused, the running limits are unchanged: {error}");
        }
        status.send_modify(|s| {
            s.refused += u64::from(!repeated);
            s.last_error = Some(error);
        });
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LimitsError> {
    let len = std::fs::metadata(path).map_err(|e| LimitsError::io(path, e))?.len();
    check_len(path, len)?;
    std::fs::read(path).map_err(|e| LimitsError::io(path, e))
}

async fn read_async(path: &Path) -> Result<Vec<u8>, LimitsError> {
    let len = tokio::fs::metadata(path).await.map_err(|e| LimitsError::io(path, e))?.len();
    check_len(path, len)?;
    tokio::fs::read(path).await.map_err(|e| LimitsError::io(path, e))
}

fn check_len(path: &Path, len: u64) -> Result<(), LimitsError> {
    if len > MAX_FILE_LEN {
        return Err(LimitsError::new(&path.display().to_string(), LimitsErrorKind::TooLarge(len)));
    }
    Ok(())
}

impl std::fmt::Debug for LimitsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitsFile").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// The task of [`LimitsFile::watch`]; dropping it stops the polling.
#[derive(Debug)]
pub struct LimitsWatcher {
    task: AbortHandle,
    status: watch::Receiver<ReloadStatus>,
}

/// What the watcher has done so far.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// Versions of the file applied.
    pub applied: u64,
    /// Versions (or read failures) refused.
    pub refused: u64,
    /// Why the latest version was refused, until one is applied.
    pub last_error: Option<LimitsError>,
}

impl LimitsWatcher {
    /// A receiver that sees every change of [`ReloadStatus`]: `changed().await` wakes up
    /// after each applied or refused version.
    pub fn status(&self) -> watch::Receiver<ReloadStatus> {
        self.status.clone()
    }
}

impl Drop for LimitsWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
