//! The crate's error type.

/// Why a command could not be posted to a worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The worker was stopped (by [`WorkerHandle::stop`](crate::WorkerHandle::stop),
    /// by its owner's root token, or because every handle was dropped).
    #[error("worker stopped")]
    Stopped,
}
