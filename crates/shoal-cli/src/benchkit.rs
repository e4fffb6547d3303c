//! What the benchmark binaries share: the `shoal` binary beside them, their scratch folder, processes ended
//! by their own pid.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use shoal_node::Ticket;

/// The `shoal` binary built beside the running benchmark.
pub(crate) fn shoal_binary() -> anyhow::Result<PathBuf> {
    let shoal = std::env::current_exe()?.with_file_name("shoal");
    if !shoal.exists() {
        bail!("{} not found: build it first (cargo build --release -p shoal-cli)", shoal.display());
    }
    Ok(shoal)
}

/// A scratch folder in `dir` (or the system's), removed when dropped.
pub(crate) fn scratch(dir: Option<&Path>) -> anyhow::Result<tempfile::TempDir> {
    Ok(match dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    })
}

/// A child process that is killed (by its own pid) and reaped when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` (a `shoal` with its global flags) as `share PATH`, quiet, and returns it with the ticket it
/// prints on its first line.
pub(crate) fn start_sharer(mut cmd: Command, path: &Path) -> anyhow::Result<(Proc, Ticket)> {
    let mut child = cmd
        .arg("share")
        .arg(path)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting shoal share")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let sharer = Proc(child);
    let ticket = line.trim().parse().with_context(|| format!("reading a sharer's ticket from {line:?}"))?;
    Ok((sharer, ticket))
}
