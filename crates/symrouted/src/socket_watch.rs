//! Waiting for the system bus's socket to appear, without polling.
//!
//! The unit starts the daemon before dbus.service (docs/design.md, "Boot ordering"), so at
//! boot the bus usually comes later. inotify watches the nearest folder of the socket's path
//! that exists (`/run/dbus`, or `/run` before dbus made its folder) and wakes the daemon when
//! the socket's name is created or moved in; the watch moves down as folders appear and up
//! when one is removed. No thread, no timer: the inotify descriptor sits in the event loop.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// What a folder is watched for: entries created or moved in, and the folder going away.
const FOLDER_EVENTS: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;
/// Room for many events at once (each is 16 bytes plus a name of at most 256).
const BUFFER: usize = 16 * 1024;

/// One inotify event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub wd: i32,
    pub mask: u32,
    pub name: OsString,
}

/// Decodes what one read(2) of an inotify descriptor returned. Pure, so it is unit-tested.
pub fn decode(mut buf: &[u8]) -> Vec<Event> {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    let mut events = Vec::new();
    while buf.len() >= HEADER {
        // SAFETY: HEADER bytes are there; read_unaligned copes with any alignment.
        let header: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        let len = header.len as usize;
        let Some(name) = buf.get(HEADER..HEADER + len) else {
            break;
        };
        // The name is padded with NULs to an aligned length.
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        events.push(Event {
            wd: header.wd,
            mask: header.mask,
            name: OsStr::from_bytes(&name[..end]).to_os_string(),
        });
        buf = &buf[HEADER + len..];
    }
    events
}

/// Whether `events` say `name` appeared in the folder watched as `wd` (or that events were
/// lost, after which anything may have happened).
pub fn appeared(events: &[Event], wd: Option<i32>, name: &OsStr) -> bool {
    events.iter().any(|e| {
        e.mask & libc::IN_Q_OVERFLOW != 0
            || (Some(e.wd) == wd
                && e.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0
                && e.name == name)
    })
}

/// The nearest folder on the way to `socket` that exists: its parent, or the parent's.
fn nearest_folder(socket: &Path) -> PathBuf {
    let mut dir = socket.parent().unwrap_or(Path::new("/"));
    while !dir.is_dir() {
        match dir.parent() {
            Some(up) => dir = up,
            None => break,
        }
    }
    dir.to_path_buf()
}

/// An inotify watch for a Unix socket at an absolute path.
pub struct SocketWatch {
    socket: PathBuf,
    fd: AsyncFd<OwnedFd>,
    /// The folder watched now and its watch descriptor.
    watched: Option<(PathBuf, i32)>,
}

impl SocketWatch {
    /// Starts watching. Something created before this returns is not reported: look with
    /// [`SocketWatch::exists`] after creating the watch.
    pub fn new(socket: &Path) -> io::Result<SocketWatch> {
        if !socket.is_absolute() || socket.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not an absolute socket path", socket.display()),
            ));
        }
        // SAFETY: plain inotify_init1(2); the descriptor is owned right below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the descriptor moves into the AsyncFd, which owns it until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let mut watch = SocketWatch {
            socket: socket.to_path_buf(),
            fd,
            watched: None,
        };
        watch.arm()?;
        Ok(watch)
    }

    /// Whether something is at the socket's path now.
    pub fn exists(&self) -> bool {
        self.socket.symlink_metadata().is_ok()
    }

    /// Watches the nearest folder that exists, until it stays the same: a deeper folder may
    /// be made between finding the nearest and watching it.
    fn arm(&mut self) -> io::Result<()> {
        loop {
            let dir = nearest_folder(&self.socket);
            if self.watched.as_ref().is_some_and(|(d, _)| *d == dir) {
                return Ok(());
            }
            if let Some((_, wd)) = self.watched.take() {
                // SAFETY: plain inotify_rm_watch(2); fails harmlessly if the folder is gone.
                unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
            }
            let path = CString::new(dir.as_os_str().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            // SAFETY: a valid descriptor and a NUL-terminated path.
            let wd = unsafe {
                libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), FOLDER_EVENTS)
            };
            if wd < 0 {
                let e = io::Error::last_os_error();
                // Removed between the look and the watch: look again.
                if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) {
                    continue;
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("watching {}: {e}", dir.display()),
                ));
            }
            log::debug!("watching {} for {}", dir.display(), self.socket.display());
            self.watched = Some((dir, wd));
        }
    }

    /// Waits until the socket's name is created or moved into its folder (also when the
    /// folder itself was created meanwhile and holds it). Cancel-safe: the watch is consistent
    /// at every await point.
    pub async fn appeared(&mut self) -> io::Result<()> {
        let name = self.socket.file_name().unwrap_or_default().to_os_string();
        let parent = self.socket.parent().map(Path::to_path_buf);
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = vec![0u8; BUFFER];
            let read = guard.try_io(|fd| {
                // SAFETY: reads into a buffer of BUFFER bytes.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), BUFFER) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            let n = match read {
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                // Not readable after all: readable() cleared the flag, wait again.
                Err(_) => continue,
            };
            buf.truncate(n);
            let events = decode(&buf);
            let in_parent = self
                .watched
                .as_ref()
                .filter(|(d, _)| Some(d) == parent.as_ref())
                .map(|(_, wd)| *wd);
            let mut seen = appeared(&events, in_parent, &name);
            let dead = self.watched.as_ref().is_some_and(|(_, wd)| {
                events.iter().any(|e| {
                    e.wd == *wd
                        && e.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF)
                            != 0
                })
            });
            if dead {
                // The kernel drops the watch of a removed folder by itself.
                self.watched = None;
            }
            let before = self.watched.as_ref().map(|(d, _)| d.clone());
            self.arm()?;
            let moved = self.watched.as_ref().map(|(d, _)| d.clone()) != before;
            // A folder on the way was made (or removed and made again) with the socket
            // already in it: its creation fell before the new watch.
            if moved && self.exists() {
                seen = true;
            }
            if seen {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    use super::*;

    fn event_bytes(wd: i32, mask: u32, name: &str) -> Vec<u8> {
        let mut padded = name.as_bytes().to_vec();
        if !padded.is_empty() {
            padded.resize(name.len().div_ceil(16) * 16 + 16, 0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&wd.to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&(padded.len() as u32).to_ne_bytes());
        out.extend_from_slice(&padded);
        out
    }

    #[test]
    fn events_are_decoded_with_their_padded_names() {
        let mut buf = event_bytes(1, libc::IN_CREATE, "system_bus_socket");
        buf.extend(event_bytes(2, libc::IN_IGNORED, ""));
        buf.extend(event_bytes(1, libc::IN_MOVED_TO, "x"));
        // A truncated event at the end is not read.
        buf.extend_from_slice(&[1, 2, 3]);
        let events = decode(&buf);
        assert_eq!(
            events,
            vec![
                Event {
                    wd: 1,
                    mask: libc::IN_CREATE,
                    name: "system_bus_socket".into()
                },
                Event {
                    wd: 2,
                    mask: libc::IN_IGNORED,
                    name: "".into()
                },
                Event {
                    wd: 1,
                    mask: libc::IN_MOVED_TO,
                    name: "x".into()
                },
            ]
        );
        let name = OsStr::new("system_bus_socket");
        assert!(appeared(&events, Some(1), name));
        assert!(!appeared(&events, Some(2), name));
        assert!(!appeared(&events, None, name));
        let overflow = decode(&event_bytes(-1, libc::IN_Q_OVERFLOW, ""));
        assert!(appeared(&overflow, None, name));
    }

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "symrouted-socket-watch-{tag}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn within<F: std::future::Future>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_secs(10), f).await.ok()
    }

    /// The socket's folders do not exist yet: the watch follows them down as they are made,
    /// ignores other entries, and reports the socket once it is bound.
    #[tokio::test]
    async fn a_socket_bound_in_folders_made_later_is_reported() {
        let scratch = Scratch::new("later");
        let socket = scratch.0.join("run/dbus/system_bus_socket");
        let mut watch = SocketWatch::new(&socket).unwrap();
        assert!(!watch.exists());
        std::fs::create_dir(scratch.0.join("run")).unwrap();
        std::fs::create_dir(scratch.0.join("run/dbus")).unwrap();
        std::fs::write(scratch.0.join("run/dbus/pid"), "1").unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), watch.appeared()).await;
        assert!(early.is_err(), "reported before the socket was there");
        let _listener = UnixListener::bind(&socket).unwrap();
        assert!(within(watch.appeared()).await.is_some_and(|r| r.is_ok()));
        assert!(watch.exists());
    }

    /// The folder is removed and made again with the socket in it before the watch looks:
    /// still reported.
    #[tokio::test]
    async fn a_folder_removed_and_made_again_is_watched_again() {
        let scratch = Scratch::new("again");
        std::fs::create_dir(scratch.0.join("dbus")).unwrap();
        let socket = scratch.0.join("dbus/system_bus_socket");
        let mut watch = SocketWatch::new(&socket).unwrap();
        std::fs::remove_dir(scratch.0.join("dbus")).unwrap();
        std::fs::create_dir(scratch.0.join("dbus")).unwrap();
        let _listener = UnixListener::bind(&socket).unwrap();
        assert!(within(watch.appeared()).await.is_some_and(|r| r.is_ok()));
    }

    #[test]
    fn a_relative_path_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        assert!(SocketWatch::new(Path::new("run/dbus/socket")).is_err());
    }
}
