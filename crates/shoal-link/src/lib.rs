//! A link emulator for Shoal's tests and benchmarks: hosts in network namespaces, joined by links with a
//! one-way delay, a rate cap and a bounded queue in each direction.
//!
//! Why our own: the development and CI kernels have no `netem`, and a transfer over loopback says nothing
//! of what users see over the Internet, where the round trip, not the CPU, sets how much must be in flight.
//! Packets are emulated, not bytes of a TCP stream: TCP's and QUIC's own congestion control, windows and
//! losses are the kernel's and quinn's, as on a real link.
//!
//! The principal type is [`Lab`]: [`Lab::new`] makes hosts, [`Lab::connect`] joins two of them with a
//! [`Shape`] per direction, [`Lab::command`] runs a program inside a host and [`Lab::spawn_in`] runs a
//! thread there. [`Shaper`] is one direction of a link as a state machine without I/O.
//!
//! ```no_run
//! use std::time::Duration;
//! use shoal_link::{Lab, Shape};
//! # fn main() -> Result<(), shoal_link::LabError> {
//! let mut lab = Lab::new(2)?;
//! let shape = Shape::new(Duration::from_millis(50), 25_000_000); // RTT 100 ms, 25 MB/s each way
//! let k = lab.connect(0, 1, shape, shape, 9000)?;
//! let server = lab.link(k).map(|l| l.b_addr);
//! let status = lab.command(0, "ping")?.args(["-c", "1", &format!("{server:?}")]).status();
//! # Ok(()) }
//! ```
//!
//! Needs root (namespaces and TUN devices), `/dev/net/tun` and iproute2. Everything a lab made is removed
//! when it is dropped; namespaces left by a killed process are removed by the next lab.

mod lab;
mod ns;
mod shaper;
mod tun;

pub use lab::{Host, Lab, Link};
pub use shaper::{Counts, Shape, Shaper};

/// What can go wrong setting up a lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// A system call or a program failed.
    #[error("{what}: {err}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        err: std::io::Error,
    },
    /// The lab could not be set up as asked.
    #[error("{0}")]
    Setup(String),
}

/// Whether labs can be made here (root, `/dev/net/tun`, `ip`): tests that need one say why they do not run.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces and TUN devices".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        return Some("no `ip` (iproute2)".into());
    }
    None
}

/// For tests: true if labs can be made here; otherwise says why on stderr and returns false, except under
/// CI (`CI` set), where a lab test must run and this panics with the reason.
pub fn testable() -> bool {
    match unavailable() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("CI must run the link tests, but: {why}"),
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}
