//! Files uploaded into the daemon's share folder (`<home>/shared`), as the web UI's drag-and-drop sends
//! them, then shared like any other file.
//!
//! The bytes go to a hidden temporary file in that folder and appear under their name only when complete,
//! through a hard link, which refuses a name that exists: nothing already there is replaced, and an upload
//! cut short (the browser closed, the disk full) leaves nothing behind.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use shoal_store::BlobInfo;
use tokio::io::AsyncWriteExt;

use super::Transfer;
use crate::NodeError;

/// The share folder's name in the data directory.
pub const FOLDER: &str = "shared";

/// Is `name` a plain file name (what a peer or a browser may choose to write under)?
pub(crate) fn check_plain(dir: &Path, name: &str) -> Result<PathBuf, NodeError> {
    let plain = name.len() <= 255
        && !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control);
    if !plain {
        return Err(NodeError::Output {
            path: dir.join(name.chars().filter(|c| !c.is_control()).collect::<String>()),
            why: "a name to save under must be a plain file name (no '/', not '.' or '..', no control \
                  characters, at most 255 bytes)"
                .into(),
        });
    }
    Ok(dir.join(name))
}

/// Removes the temporary file unless the upload got through.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `body` to `<dir>/<name>` (refusing a name that exists) and shares it.
pub(crate) async fn receive<S, B, E>(
    transfer: &Transfer,
    dir: &Path,
    name: &str,
    mut body: S,
) -> Result<BlobInfo, NodeError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: Display,
{
    let target = check_plain(dir, name)?;
    let fail = |why: String| NodeError::Output { path: target.clone(), why };
    if tokio::fs::symlink_metadata(&target).await.is_ok() {
        return Err(NodeError::Busy(format!(
            "{} exists already: remove it or upload under another name",
            target.display()
        )));
    }
    tokio::fs::create_dir_all(dir).await.map_err(|e| NodeError::Output { path: dir.to_owned(), why: e.to_string() })?;
    let temp = dir.join(format!(".upload-{:016x}.part", rand::random::<u64>()));
    let scratch = Scratch(Some(temp.clone()));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .await
        .map_err(|e| fail(format!("cannot create a temporary file: {e}")))?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail(format!("the upload broke off: {e}")))?;
        file.write_all(chunk.as_ref()).await.map_err(|e| fail(format!("writing failed: {e}")))?;
    }
    file.sync_all().await.map_err(|e| fail(format!("writing failed: {e}")))?;
    drop(file);
    match tokio::fs::hard_link(&temp, &target).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(NodeError::Busy(format!(
                "{} appeared during the upload: upload under another name",
                target.display()
            )));
        }
        Err(e) => return Err(fail(format!("cannot name the file: {e}"))),
    }
    drop(scratch);
    transfer.share(&target).await
}
