//! Shoal's storage: what a peer has, where the bytes are, and what has been verified.
//!
//! The principal type is [`Store`], opened on a data directory. It keeps
//! - a BLAKE3 Merkle *outboard* (`blobs/<id>.obao`, bao-tree pre-order, 16 KiB chunk groups) for every blob,
//!   so that any range can be served with its proof and verified on arrival;
//! - the *catalog* (`shoal.db`, SQLite in WAL mode), one module per table and concern: `blobs` (where each
//!   blob's bytes live and the verified ranges of partial downloads, so a download resumes after a crash),
//!   `shares`, `downloads`, `index` (the full-text index of shared names that answers searches) and
//!   `registry` (an index server's copy of other peers' lists) and `messages` (posts and letters with their
//!   text indexed, petnames, letters held for offline peers) and `traffic` (bytes up and down per sample, the
//!   bandwidth history), built by the steps in `migrations`, each one transaction;
//! - *shares without copies*: sharing a file records its path, size and mtime; the file is re-checked before
//!   every request and stops being served under its old id once it changes.
//!
//! A download writes into a [`Partial`]: every piece is verified whole against the blob id before a single
//! byte of it is written, so nothing unverified reaches the output file; the final name appears only when
//! the last piece has verified. Folders travel as [`Collection`]s whose entry names are checked so that they
//! can never write outside the output directory.
//!
//! ```no_run
//! # fn main() -> Result<(), shoal_store::StoreError> {
//! let store = shoal_store::Store::open(std::path::Path::new("/tmp/shoal-home"))?;
//! let blob = store.share_file(std::path::Path::new("holiday.jpg"))?;
//! println!("{} is {} bytes", blob.id, blob.size); // the id equals `b3sum holiday.jpg`
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod atomic;
mod blobs;
mod catalog;
pub mod collection;
pub mod crash;
mod doctor;
mod downloads;
mod error;
mod id;
mod index;
mod lock;
mod messages;
mod migrations;
mod outboard;
mod partial;
pub mod proof;
mod registry;
mod shares;
pub mod small;
mod store;
mod traffic;

pub use collection::{Collection, Entry, PathError};
pub use doctor::Problem;
pub use downloads::{DownloadRecord, DownloadRequestRecord, DownloadState};
pub use error::StoreError;
pub use id::{ContentId, ParseIdError};
pub use index::{LocalHit, MAX_LOCAL_HITS};
pub use lock::lock;
pub use messages::{MAX_PETNAME, MessageKind, MessageRecord, TopicRecord};
pub use partial::{Partial, PieceError, VerifiedPiece};
pub use registry::Registration;
pub use shares::ShareRecord;
pub use store::{BlobInfo, Served, Store};
pub use traffic::TrafficSample;
