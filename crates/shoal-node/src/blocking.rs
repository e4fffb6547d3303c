//! Store work (SQLite statements, hashing a file, fsync) runs on tokio's blocking pool, never on the async
//! threads that drive the network: one helper, so that a panicked or cancelled blocking task always becomes
//! the same [`NodeError::Task`].

use crate::NodeError;

/// Runs `f` on the blocking pool and returns its result, its error turned into a [`NodeError`].
pub(crate) async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, NodeError>
where
    T: Send + 'static,
    E: Into<NodeError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| NodeError::Task(e.to_string()))?.map_err(Into::into)
}

/// 256 bits from the operating system's generator (through `rand`'s thread generator, which it seeds):
/// for what a remote peer must not guess, such as search query ids.
pub(crate) fn os_secret() -> shoal_proto::rng::Secret {
    shoal_proto::rng::Secret(rand::random())
}
