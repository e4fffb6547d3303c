//! What the benchmark binaries share: the `shoal` binary beside them, their scratch folder, processes ended
//! by their own pid.

use std::path::{Path, PathBuf};
use std::process::Child;

use anyhow::bail;

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
