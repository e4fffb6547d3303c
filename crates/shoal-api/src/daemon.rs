//! `shoal daemon`: a node plus the API, for as long as the user wants.
//!
//! Start-up order, so that nothing is ever corrupted or left pointing at the wrong process:
//! 1. take an exclusive lock on `<home>/daemon.lock` (a second daemon on the same data directory stops here
//!    with a clear message; the lock dies with the process, even on `kill -9`);
//! 2. start the node; bind the API on 127.0.0.1 (port 0 unless configured). Any other address is refused
//!    unless [`ApiOptions::allow_remote`] says otherwise: the API is plain HTTP and its token gives control
//!    of what this peer shares and where it writes;
//! 3. write `api.token` and `api.addr` (mode 0600, atomically). Any old ones are stale: we hold the lock.
//!
//! On SIGINT, SIGTERM or `POST /api/v1/stop`: stop accepting API requests, shut the node down (in-flight
//! catalog writes are single SQLite statements; downloads resume on the next start), remove the two files.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use shoal_node::{Node, NodeConfig};

use crate::server::base::{BasePath, serve_under};
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
    /// The API was to listen where other machines can reach it, and that was not allowed.
    #[error(
        "api_listen {0} is not a loopback address: the API would be reachable from other machines over plain \
         HTTP, and its token controls what this peer shares and where it writes. Listen on 127.0.0.1, or say \
         --api-allow-remote (api_allow_remote = true) to do it anyway, behind a TLS reverse proxy"
    )]
    RemoteApi(SocketAddr),
    /// The persistent API key is too weak to guard the API.
    #[error("api_key has {0} characters; use at least 32 random ones (e.g. `openssl rand -hex 32`)")]
    WeakKey(usize),
}

/// Where and how the API listens.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// The API's address (127.0.0.1:0 by default: a random port on this machine only).
    pub listen: SocketAddr,
    /// Allow an address other machines can reach (the API stays plain HTTP: put a TLS proxy in front).
    pub allow_remote: bool,
    /// A persistent key for remote tools, accepted as a bearer token besides the per-run `api.token`
    /// (Syncthing's API key); at least 32 characters.
    pub key: Option<String>,
    /// The base path a reverse proxy serves the daemon under when it forwards the path unchanged
    /// ([`BasePath::parse`]); the daemon answers at `/` too.
    pub base_path: Option<BasePath>,
}

impl ApiOptions {
    /// The API on `listen`, loopback only, with no persistent key.
    pub fn local(listen: SocketAddr) -> Self {
        Self { listen, allow_remote: false, key: None, base_path: None }
    }

    /// Checks the options before anything starts.
    fn check(&self) -> Result<(), DaemonError> {
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            return Err(DaemonError::RemoteApi(self.listen));
        }
        match &self.key {
            Some(k) if k.chars().count() < 32 => Err(DaemonError::WeakKey(k.chars().count())),
            _ => Ok(()),
        }
    }
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
    shoal_store::atomic::write(path, contents.as_bytes(), 0o600).map_err(io(path))
}

/// Runs a daemon on `config` with its API as `api` says until it is told to stop. `ready` is called once
/// everything is up (the API files exist).
pub async fn run(config: NodeConfig, api: ApiOptions, ready: impl FnOnce(&DaemonInfo)) -> Result<(), DaemonError> {
    api.check()?;
    if !api.listen.ip().is_loopback() {
        tracing::warn!(listen = %api.listen, "the API listens where other machines can reach it, over plain HTTP");
    }
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
    let listener = tokio::net::TcpListener::bind(api.listen).await.map_err(io(Path::new("api listener")))?;
    let (key, base) = (api.key, api.base_path);
    let api = listener.local_addr().map_err(io(Path::new("api listener")))?;
    let token = crate::server::random_hex(32);
    let token_path = home.join("api.token");
    let addr_path = home.join("api.addr");
    write_private(&token_path, &token)?;
    write_private(&addr_path, &api.to_string())?;
    let state = ApiState::configured(node.clone(), token, key, base.clone());
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
    let served = axum::serve(listener, serve_under(router(state), base)).with_graceful_shutdown(shutdown).await;
    node.shutdown().await;
    let _ = std::fs::remove_file(&addr_path);
    let _ = std::fs::remove_file(&token_path);
    drop(lock);
    served.map_err(io(Path::new("api server")))
}

/// Serves the API (and the web UI) of a node that runs in this process, on 127.0.0.1 with a port of the
/// system's choosing and a fresh token, until the returned task is aborted: for `shoal demo --ui`, which
/// shows a node of its own network in the browser.
pub async fn serve_local(node: Node) -> Result<(SocketAddr, ApiState, tokio::task::JoinHandle<()>), DaemonError> {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(io(Path::new("api listener")))?;
    let addr = listener.local_addr().map_err(io(Path::new("api listener")))?;
    let state = ApiState::new(node, crate::server::random_hex(32));
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the in-process API stopped");
        }
    });
    Ok((addr, state, task))
}
