//! Serializes runs: NetworkManager runs dispatcher scripts for several devices at once, and
//! the daemon and an admin may overlap. Each run reads and writes under one `flock`.
//!
//! Only root may take it: the directory is 0700 and the file 0600, both owned by root (by
//! the running user when not root), so an unprivileged user cannot even open the file, let
//! alone hold the lock and stall every run. Both are created so, and repaired when found
//! too open in a directory that is ours; anything else wrong is refused with one line.
//! Waits are bounded: a hook must not hold a dispatcher's serial queue for long.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DEFAULT_LOCK_PATH: &str = "/run/symroute/lock";

/// How long the hook and the admin CLI wait for another run to end. Runs take milliseconds
/// (a second for 100 000 routes); a holder longer than this is stuck or hostile.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory or file is not as it must be and cannot safely be repaired.
    #[error("cannot lock {}: {reason}", path.display())]
    Unsafe { path: PathBuf, reason: String },
    #[error("cannot lock {}: still held after {} s{holder}; giving up", path.display(), waited.as_secs())]
    Busy {
        path: PathBuf,
        waited: Duration,
        /// ` by pid N (comm)` when /proc/locks tells.
        holder: String,
    },
}

/// Held for the duration of a run; the kernel releases the lock when the file is closed,
/// also when the process is killed.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: std::path::PathBuf,
}

impl RunLock {
    /// Where the lock file is (the run directory's other files sit beside it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits at most `wait` for other runs to end, polling with a growing pause.
    pub fn acquire(path: &Path, wait: Duration) -> Result<RunLock, LockError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(lock) = RunLock::try_acquire(path)? {
                return Ok(lock);
            }
            let waited = started.elapsed();
            if waited >= wait {
                return Err(LockError::Busy {
                    path: path.to_path_buf(),
                    waited,
                    holder: holder(path),
                });
            }
            std::thread::sleep(pause.min(wait - waited));
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Takes the lock if nobody holds it; `None` when another run does. Never waits.
    pub fn try_acquire(path: &Path) -> Result<Option<RunLock>, LockError> {
        // A run that found the file wrong replaces it; a lock taken on the file it replaced
        // protects nothing, so the lock only counts on the file still at the path.
        for _ in 0..10 {
            let (dir, file) = open(path)?;
            if !try_flock(&file).map_err(|source| io_error(path, source))? {
                return Ok(None);
            }
            if still_at_path(&dir, path, &file) {
                return Ok(Some(RunLock {
                    _file: file,
                    path: path.to_path_buf(),
                }));
            }
        }
        Err(LockError::Unsafe {
            path: path.to_path_buf(),
            reason: "it keeps being replaced while being locked".into(),
        })
    }
}

/// Who holds the lock on `path`, for a log line (` by pid N (comm)`, or empty).
pub fn holder(path: &Path) -> String {
    match File::open(path) {
        Ok(file) => holder_of(&file),
        Err(_) => String::new(),
    }
}

fn still_at_path(dir: &File, path: &Path, file: &File) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    let Ok(cname) = CString::new(name.as_bytes()) else {
        return false;
    };
    let Ok(held) = file.metadata() else {
        return false;
    };
    // SAFETY: a zeroed stat is a valid out-parameter; fstatat writes it and does not follow
    // a symlink.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0 && st.st_dev == held.dev() && st.st_ino == held.ino()
}

fn io_error(path: &Path, source: io::Error) -> LockError {
    LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn try_flock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

fn owner_name(uid: u32) -> String {
    if uid == 0 {
        "root".into()
    } else {
        format!("uid {uid}")
    }
}

/// Opens (creating as needed) the lock file, checking and repairing its directory first;
/// returns the directory and the file. Everything goes through file descriptors so that
/// nothing can be swapped in between.
fn open(path: &Path) -> Result<(File, File), LockError> {
    let unsafe_ = |reason: String| LockError::Unsafe {
        path: path.to_path_buf(),
        reason,
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(unsafe_("not a file path".into()));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(io_error(path, e)),
    }
    let dir_flags = libc::O_DIRECTORY | libc::O_RDONLY | libc::O_NOFOLLOW;
    let dir_fd = open_at(None, dir.as_os_str().as_bytes(), dir_flags, 0).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                unsafe_(format!("{} is not a directory (a symlink?)", dir.display()))
            }
            _ => io_error(path, e),
        }
    })?;
    let dir_file = File::from(dir_fd);
    let meta = dir_file.metadata().map_err(|e| io_error(path, e))?;
    let me = euid();
    if meta.uid() != me {
        return Err(unsafe_(format!(
            "its directory {} is owned by {}, not by {}; remove it",
            dir.display(),
            owner_name(meta.uid()),
            owner_name(me)
        )));
    }
    let mode = meta.mode() & 0o7777;
    // Only symroute's own run directory (`/run/symroute`, or any directory of that name)
    // is narrowed to 0700: a root binary must never chmod a directory it was merely handed
    // with `--lock-file`. Elsewhere a directory others cannot write to is safe, since they
    // cannot open the 0600 file in it; one they can write to, unless sticky like /tmp (the
    // file checks below are enough there), is refused.
    let ours = dir.file_name() == Some(std::ffi::OsStr::new("symroute"));
    let sticky = mode & 0o1000 != 0;
    if !ours && !sticky && mode & 0o022 != 0 {
        return Err(unsafe_(format!(
            "its directory {} is writable by group or others (mode {mode:04o})",
            dir.display()
        )));
    }
    if ours && mode & 0o077 != 0 && !sticky {
        // SAFETY: fchmod on a descriptor we own.
        if unsafe { libc::fchmod(dir_file.as_raw_fd(), 0o700) } != 0 {
            return Err(io_error(path, io::Error::last_os_error()));
        }
        log::warn!(
            "{}: mode was {mode:04o}, set to 0700 so that only {} can take the lock",
            dir.display(),
            owner_name(me)
        );
    }
    let name = name.as_bytes();
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let file = match open_at(Some(&dir_file), name, flags, 0o600) {
        Ok(fd) => File::from(fd),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && ours && !sticky => {
            replace(&dir_file, name, path, "a symlink")?
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_("it is a symlink; remove it".into()))
        }
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Err(unsafe_("it is a directory; remove it".into()))
        }
        Err(e) => return Err(io_error(path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let file_mode = meta.mode() & 0o7777;
    let wrong = if !meta.file_type().is_file() {
        Some("not a regular file".to_string())
    } else if meta.uid() != me {
        Some(format!("owned by {}", owner_name(meta.uid())))
    } else if meta.nlink() != 1 {
        Some(format!("a file with {} hard links", meta.nlink()))
    } else if file_mode & 0o077 != 0 {
        // Replaced, not only chmod'ed: whoever could open it may hold the lock on it now.
        Some(format!("mode {file_mode:04o}"))
    } else {
        None
    };
    let file = match wrong {
        // Our own directory: what is in it can be replaced without touching anything else.
        Some(what) if ours && !sticky => {
            drop(file);
            replace(&dir_file, name, path, &what)?
        }
        Some(what) if file_mode & 0o077 != 0 && meta.file_type().is_file() && meta.uid() == me => {
            // SAFETY: fchmod on a descriptor we own.
            if unsafe { libc::fchmod(file.as_raw_fd(), 0o600) } != 0 {
                return Err(io_error(path, io::Error::last_os_error()));
            }
            log::debug!("{}: was {what}, set to 0600", path.display());
            file
        }
        Some(what) => return Err(unsafe_(format!("it is {what}; remove it"))),
        None => file,
    };
    Ok((dir_file, file))
}

/// Removes the entry `name` of our directory and creates a fresh lock file in its place.
fn replace(dir: &File, name: &[u8], path: &Path, what: &str) -> Result<File, LockError> {
    log::warn!(
        "{}: was {what}; replaced by a fresh file, mode 0600",
        path.display()
    );
    let cname = CString::new(name).map_err(|e| io_error(path, io::Error::other(e)))?;
    // SAFETY: unlinkat with a descriptor we own and a NUL-terminated name; it does not follow
    // a symlink, it removes it.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0) } != 0 {
        let e = io::Error::last_os_error();
        // Another run replaced it first: use that one.
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(io_error(path, e));
        }
    }
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    match open_at(Some(dir), name, flags, 0o600) {
        Ok(fd) => Ok(File::from(fd)),
        // Another run created it in between; it checks like ours.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK;
            open_at(Some(dir), name, flags, 0)
                .map(File::from)
                .map_err(|e| io_error(path, e))
        }
        Err(e) => Err(io_error(path, e)),
    }
}

fn open_at(dir: Option<&File>, name: &[u8], flags: i32, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(io::Error::other)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: openat with a NUL-terminated name; the returned descriptor is owned below.
    let fd = unsafe {
        libc::openat(
            dirfd,
            cname.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOCTTY,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// ` by pid N (comm)` from /proc/locks for the flock on `file`'s inode, or empty.
fn holder_of(file: &File) -> String {
    let Ok(meta) = file.metadata() else {
        return String::new();
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return String::new();
    };
    let dev = meta.dev();
    // /proc/locks writes the device as MAJOR:MINOR in hex, then the inode in decimal.
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    for line in locks.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; blocked waiters have "->".
        if fields.get(1) != Some(&"FLOCK") || fields.len() < 6 {
            continue;
        }
        if fields[5] == wanted {
            let pid = fields[4];
            // The pid is the one that took the lock; children inherit the descriptor, so the
            // holder may be one of them.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            return match comm.trim() {
                "" => format!(" (taken by pid {pid}, since exited: a child of it holds it)"),
                comm => format!(" by pid {pid} ({comm})"),
            };
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory named like the run directory (`.../symroute`), which is ours to repair.
    fn temp_dir(tag: &str) -> PathBuf {
        let parent =
            std::env::temp_dir().join(format!("symroute-lock-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        parent.join("symroute")
    }

    fn remove(dir: &Path) {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(dir));
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_a_private_directory_and_file() {
        let dir = temp_dir("create");
        let path = dir.join("lock");
        let lock = RunLock::acquire(&path, LOCK_WAIT).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        // Held: a second take fails at once, then works once released.
        assert!(RunLock::try_acquire(&path).unwrap().is_none());
        let e = RunLock::acquire(&path, Duration::from_millis(30)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot lock {}: still held after 0 s by pid ",
                path.display()
            )),
            "{text}"
        );
        assert!(text.ends_with("; giving up"), "{text}");
        drop(lock);
        assert!(RunLock::try_acquire(&path).unwrap().is_some());
        remove(&dir);
    }

    #[test]
    fn too_open_directory_and_file_of_ours_are_tightened() {
        let dir = temp_dir("repair");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("lock");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Whoever could open the old file may hold the lock on it: it is replaced, so that
        // lock stalls nobody.
        let old = File::open(&path).unwrap();
        assert!(try_flock(&old).unwrap());
        drop(
            RunLock::try_acquire(&path)
                .unwrap()
                .expect("the old file's lock is moot"),
        );
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        remove(&dir);
    }

    #[test]
    fn symlink_and_hard_link_in_our_directory_are_replaced_not_followed() {
        let dir = temp_dir("links");
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, "precious").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.join("lock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        drop(RunLock::acquire(&path, LOCK_WAIT).unwrap());
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        std::fs::remove_file(&path).unwrap();
        std::fs::hard_link(&target, &path).unwrap();
        drop(RunLock::acquire(&path, LOCK_WAIT).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().nlink(), 1);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert_eq!(mode(&target), 0o644, "the link's target was changed");
        remove(&dir);
    }

    #[test]
    fn directory_in_place_of_the_file_or_a_symlinked_directory_is_refused() {
        let dir = temp_dir("refuse");
        let path = dir.join("lock");
        std::fs::create_dir_all(&path).unwrap();
        let e = RunLock::try_acquire(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "cannot lock {}: it is a directory; remove it",
                path.display()
            )
        );
        let link = dir.join("linked");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = RunLock::try_acquire(&link.join("lock"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a directory (a symlink?)"), "{e}");
        remove(&dir);
    }

    #[test]
    fn directory_of_someone_else_is_refused() {
        if euid() != 0 {
            eprintln!("skipped directory_of_someone_else_is_refused: needs root for chown");
            return;
        }
        let dir = temp_dir("owner");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let path = dir.join("lock");
        assert_eq!(
            RunLock::try_acquire(&path).unwrap_err().to_string(),
            format!(
                "cannot lock {}: its directory {} is owned by uid 65534, not by root; remove it",
                path.display(),
                dir.display()
            )
        );
        // A file of someone else's in our directory is replaced.
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
        std::fs::write(&path, "").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        drop(RunLock::try_acquire(&path).unwrap().unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), 0);
        remove(&dir);
    }

    #[test]
    fn a_directory_handed_over_is_never_changed_only_refused_when_others_can_write() {
        let parent = temp_dir("handed").parent().unwrap().to_path_buf();
        let dir = parent.join("locks");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("lock");
        drop(RunLock::try_acquire(&path).unwrap().unwrap());
        assert_eq!(mode(&dir), 0o755, "a directory not ours was changed");
        assert_eq!(mode(&path), 0o600);
        // A file not as it must be is not replaced in someone's directory.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(parent.join("elsewhere"), &path).unwrap();
        let e = RunLock::try_acquire(&path).unwrap_err().to_string();
        assert!(e.contains("remove it"), "{e}");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::remove_file(&path).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = RunLock::try_acquire(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "cannot lock {}: its directory {} is writable by group or others (mode 0777)",
                path.display(),
                dir.display()
            )
        );
        assert_eq!(mode(&dir), 0o777);
        let _ = std::fs::remove_dir_all(parent);
    }
}
