//! `sd_notify(3)` without libsystemd: one datagram to `$NOTIFY_SOCKET`.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `state` (e.g. `READY=1`) to the service manager. Returns `Ok(false)` when not run
/// by one (`NOTIFY_SOCKET` unset).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    notify_to(&path.to_string_lossy(), state)?;
    Ok(true)
}

/// Tells the service manager a reload has begun: `RELOADING=1` with the time on the
/// monotonic clock, which systemd 253 and later require (`Type=notify-reload`) and older ones
/// ignore. `READY=1` ends the reload.
pub fn reloading() -> io::Result<bool> {
    notify(&reloading_message(monotonic_usec()))
}

fn reloading_message(usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into memory we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000
}

/// Sends `state` to the notification socket `path` (`@name` for an abstract socket).
pub fn notify_to(path: &str, state: &str) -> io::Result<()> {
    let addr = match path.strip_prefix('@') {
        // A leading '@' names a socket in the abstract namespace.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// How often systemd expects `WATCHDOG=1` (`WatchdogSec=`), read as sd_watchdog_enabled(3)
/// does: `WATCHDOG_USEC`, for this process only when `WATCHDOG_PID` names another one.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn watchdog_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    // 0 is "off" and u64::MAX systemd's "infinity".
    (usec > 0 && usec != u64::MAX).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod watchdog_tests {
    use super::*;

    #[test]
    fn watchdog_is_read_like_sd_watchdog_enabled() {
        let s = Duration::from_secs;
        assert_eq!(watchdog_from(Some("30000000"), None, 7), Some(s(30)));
        assert_eq!(watchdog_from(Some("30000000"), Some("7"), 7), Some(s(30)));
        assert_eq!(watchdog_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("30000000"), Some("x"), 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("-5"), None, 7), None);
        assert_eq!(watchdog_from(Some("18446744073709551615"), None, 7), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_the_socket() {
        let dir = std::env::temp_dir().join(format!("symrouted-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    #[test]
    fn reloading_carries_the_monotonic_time() {
        let before = monotonic_usec();
        assert!(before > 0);
        assert!(monotonic_usec() >= before);
        assert_eq!(reloading_message(42), "RELOADING=1\nMONOTONIC_USEC=42");
    }
}

#[cfg(test)]
mod abstract_tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;

    #[test]
    fn abstract_socket_names_work() {
        let name = format!("symrouted-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
