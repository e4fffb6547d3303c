//! A TUN device: an interface whose packets a program reads and writes (Linux `/dev/net/tun`).
//!
//! The device is created without `TUNSETPERSIST`, so it disappears when its descriptor is closed: a
//! benchmark that is killed leaves no interface behind. The descriptor keeps working after the interface
//! is moved into another network namespace, which is how one program carries packets between namespaces.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::LabError;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TUN device.
#[derive(Debug)]
pub(crate) struct Tun {
    fd: OwnedFd,
    pub(crate) name: String,
}

impl Tun {
    /// Creates the device `name` (at most 15 bytes), non-blocking, packets without a header.
    pub(crate) fn create(name: &str) -> Result<Self, LabError> {
        let cname = CString::new(name).map_err(|_| LabError::Setup(format!("bad interface name {name:?}")))?;
        if cname.as_bytes().len() >= libc::IFNAMSIZ {
            return Err(LabError::Setup(format!("interface name {name:?} is longer than 15 bytes")));
        }
        // SAFETY: a plain open(2) of a constant path; the result is checked.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(LabError::Os {
                what: "opening /dev/net/tun (root is needed)",
                err: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `raw` is a descriptor we just opened and own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TUN | IFF_NO_PI, _pad: [0; 22] };
        req.name[..cname.as_bytes().len()].copy_from_slice(cname.as_bytes());
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is laid out as.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(LabError::Os { what: "creating a TUN device", err: std::io::Error::last_os_error() });
        }
        Ok(Self { fd, name: name.to_string() })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads one packet into `buf`; `None` when none is waiting.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        // SAFETY: reads at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::read(self.raw(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock { Ok(None) } else { Err(err) }
    }

    /// Hands one packet to the kernel as if it had arrived on this interface. A full device queue drops
    /// it, as a real interface would.
    pub(crate) fn send(&self, packet: &[u8]) {
        // SAFETY: writes `packet.len()` bytes from `packet`.
        let _ = unsafe { libc::write(self.raw(), packet.as_ptr().cast(), packet.len()) };
    }
}
