//! Named network namespaces (`ip netns`), and running things inside them.
//!
//! Each namespace is a host of the lab: its own interfaces, addresses, routes and TCP settings. A process
//! runs in one with `ip netns exec`; a thread of this process enters one with `setns(2)`, and every socket
//! it opens afterwards belongs to that namespace.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use crate::LabError;

/// Runs `ip ARGS`, with its error output in the error.
pub(crate) fn ip<I, S>(args: I) -> Result<(), LabError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let out = Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| LabError::Os { what: "running `ip` (install iproute2)", err })?;
    if !out.status.success() {
        let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        return Err(LabError::Setup(format!(
            "`ip {}` failed: {}",
            shown.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Creates the namespace `name` with its loopback up.
pub(crate) fn add(name: &str) -> Result<(), LabError> {
    ip(["netns", "add", name])?;
    ip(["-n", name, "link", "set", "lo", "up"])
}

/// Deletes the namespace `name` (processes still in it keep it alive until they end).
pub(crate) fn delete(name: &str) {
    let _ = ip(["netns", "delete", name]);
}

/// Namespaces left by earlier labs whose process is gone (a benchmark killed by a signal): deleted, so that
/// they do not pile up. A lab's namespaces are named `shoal-lab-PID-...`.
pub(crate) fn delete_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).stdin(Stdio::null()).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("shoal-lab-") else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            delete(name);
        }
    }
}

/// Moves the calling thread into namespace `name`.
pub(crate) fn enter(name: &str) -> Result<(), LabError> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).map_err(|err| LabError::Os { what: "opening a namespace", err })?;
    // SAFETY: setns on a namespace descriptor we hold open; it changes only this thread's namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(LabError::Os { what: "entering a namespace", err: std::io::Error::last_os_error() });
    }
    Ok(())
}
