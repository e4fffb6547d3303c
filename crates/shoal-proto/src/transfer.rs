//! `/shoal/transfer/1`: fetching verified ranges of a blob from several peers.
//!
//! - [`messages`]: what travels on the wire (requests, responses, limits).
//! - [`layout`]: how a blob of a given size is cut into pieces, and which BLAKE3 chunks each piece covers.
//! - [`bitfield`]: a compact set of piece indices.
//! - [`scheduler`]: the sans-IO piece picker that decides which peer fetches which piece.
//! - [`window`]: how many bytes to keep requested from one provider (rate x round trip, delay-limited).
//! - [`uploads`]: which waiting answer a capped uploader sends next (least-sent piece first).
//!
//! The invariants the scheduler keeps are written down in `transfer/STATE.md`.

pub mod bitfield;
pub mod layout;
pub mod messages;
pub mod scheduler;
pub mod uploads;
pub mod window;

pub use bitfield::{Bitfield, Missing};
pub use layout::{CHUNK, ChunkSpan, Layout};
pub use messages::{PROTOCOL, Request, Response};
pub use scheduler::{Action, Config, DropReason, Failure, Scheduler};
pub use uploads::UploadQueue;
pub use window::{Sent, Window, WindowConfig};
