//! The process-wide default backend: an in-memory backend unless replaced at startup.

use super::{Backend, MemoryBackend};
use std::sync::{Arc, OnceLock};

static DEFAULT: OnceLock<Arc<dyn Backend>> = OnceLock::new();

/// The backend used by throttles built without one: the process-wide
/// [`MemoryBackend`] unless [`set_default_backend`] chose another first.
pub fn default_backend() -> Arc<dyn Backend> {
    DEFAULT.get_or_init(|| Arc::new(MemoryBackend::new())).clone()
}

/// Replaces the default backend. Call it at startup, before any throttle without an
/// explicit backend is built; afterwards it fails, because those throttles already
/// hold the old one.
///
/// ```
/// use throttle::backend::{MemoryBackend, set_default_backend};
/// set_default_backend(MemoryBackend::builder().namespace("myapp").build()?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn set_default_backend(backend: impl Backend) -> Result<(), DefaultBackendInUse> {
    DEFAULT.set(Arc::new(backend)).map_err(|_| DefaultBackendInUse)
}

/// [`set_default_backend`] was called after the default backend was already in use.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the default throttle backend is already in use; call `set_default_backend` at startup, before building throttles"
)]
pub struct DefaultBackendInUse;
