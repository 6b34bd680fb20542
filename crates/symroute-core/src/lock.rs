//! Serializes runs: NetworkManager runs dispatcher scripts for several devices at once, and
//! the daemon and an admin may overlap. Each run reads and writes under one `flock`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const DEFAULT_LOCK_PATH: &str = "/run/symroute/lock";

#[derive(Debug, thiserror::Error)]
#[error("cannot lock {}: {source}", path.display())]
pub struct LockError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Held for the duration of a run; the kernel releases the lock when the file is closed,
/// also when the process is killed.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Waits until no other run holds the lock.
    pub fn acquire(path: &Path) -> Result<RunLock, LockError> {
        let err = |source| LockError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(err)?;
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(RunLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(err(e));
            }
        }
    }
}
