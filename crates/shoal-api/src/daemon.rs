//! `shoal daemon`: a node plus the API, for as long as the user wants.
//!
//! Start-up order, so that nothing is ever corrupted or left pointing at the wrong process:
//! 1. take an exclusive lock on `<home>/daemon.lock` (a second daemon on the same data directory stops here
//!    with a clear message; the lock dies with the process, even on `kill -9`);
//! 2. start the node; bind the API on 127.0.0.1 (port 0 unless configured);
//! 3. write `api.token` and `api.addr` (mode 0600, atomically). Any old ones are stale: we hold the lock.
//!
//! On SIGINT, SIGTERM or `POST /api/v1/stop`: stop accepting API requests, shut the node down (in-flight
//! catalog writes are single SQLite statements; downloads resume on the next start), remove the two files.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use shoal_node::{Node, NodeConfig};

use crate::server::{ApiState, router};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Another daemon holds the data directory.
    #[error("another shoal daemon{pid} is running on {home}: stop it first (shoal stop) or use another --home")]
    Locked {
        /// The data directory.
        home: PathBuf,
        /// " (pid N)" when known.
        pid: String,
    },
    /// A file in the data directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The node failed.
    #[error(transparent)]
    Node(#[from] shoal_node::NodeError),
}

/// What a running daemon tells whoever started it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DaemonInfo {
    /// Peer id.
    pub peer: String,
    /// Listen addresses of the peer.
    pub addrs: Vec<String>,
    /// Where the API listens.
    pub api: SocketAddr,
    /// The data directory.
    pub home: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io { path: path.to_owned(), source }
}

fn write_private(path: &Path, contents: &str) -> Result<(), DaemonError> {
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(contents.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn new_token() -> Result<String, DaemonError> {
    let mut bytes = [0u8; 32];
    let p = Path::new("/dev/urandom");
    std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut bytes)).map_err(io(p))?;
    Ok(data_encoding::HEXLOWER.encode(&bytes))
}

/// Runs a daemon on `config` with its API on `api_listen` until it is told to stop. `ready` is called once
/// everything is up (the API files exist).
pub async fn run(
    config: NodeConfig,
    api_listen: SocketAddr,
    ready: impl FnOnce(&DaemonInfo),
) -> Result<(), DaemonError> {
    let home = config.home.clone();
    std::fs::create_dir_all(&home).map_err(io(&home))?;
    let lock_path = home.join("daemon.lock");
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    if lock.try_lock().is_err() {
        let mut pid = String::new();
        let _ = lock.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(DaemonError::Locked {
            home,
            pid: if pid.is_empty() { String::new() } else { format!(" (pid {pid})") },
        });
    }
    lock.set_len(0).map_err(io(&lock_path))?;
    lock.write_all(std::process::id().to_string().as_bytes()).map_err(io(&lock_path))?;

    let node = Node::start(config).await?;
    let listener = tokio::net::TcpListener::bind(api_listen).await.map_err(io(Path::new("api listener")))?;
    let api = listener.local_addr().map_err(io(Path::new("api listener")))?;
    let token = new_token()?;
    let token_path = home.join("api.token");
    let addr_path = home.join("api.addr");
    write_private(&token_path, &token)?;
    write_private(&addr_path, &api.to_string())?;
    let state = ApiState::new(node.clone(), token);
    // Downloads that a previous run had not finished go on (they resume from what was verified).
    if let Err(e) = state.resume_requests().await {
        tracing::warn!(error = %e, "cannot take up unfinished downloads");
    }
    let info = DaemonInfo {
        peer: node.peer_id().to_string(),
        addrs: node.addrs().await?.iter().map(|a| a.to_string()).collect(),
        api,
        home: home.clone(),
    };
    // Handlers are in place before anyone is told we are up: a SIGTERM right after start must still stop
    // the daemon cleanly (without them, the default action kills it and leaves the API files behind).
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io(Path::new("SIGINT handler")))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(io(Path::new("SIGTERM handler")))?;
    ready(&info);

    let stop_state = state.clone();
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = stop_state.stop_requested() => {}
        }
        tracing::info!("stopping");
    };
    let served = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    node.shutdown().await;
    let _ = std::fs::remove_file(&addr_path);
    let _ = std::fs::remove_file(&token_path);
    drop(lock);
    served.map_err(io(Path::new("api server")))
}
