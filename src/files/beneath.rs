//! Opening a file below a directory without following symbolic links on the way.
//!
//! Checking a path and then opening it is a race: between the two, another local user who
//! can write in an allowed directory can swap a subdirectory for a symlink to somewhere
//! else, and the open follows it. So the file is opened first, by walking from a handle on
//! the allowed directory one component at a time with `O_NOFOLLOW` (each step relative to
//! the directory the previous one opened), and whatever is opened is by construction inside
//! that directory. A symlink met on the way, swapped in or not, makes the open fail.
//!
//! The final component is opened with `O_NONBLOCK`, so a FIFO (or a device) opens at once
//! instead of waiting for a writer; the caller then refuses anything but a regular file.

use std::fs::File;
use std::io;
use std::path::{Component, Path};

/// Opens `below` (a relative path of plain names) inside the directory `root`.
#[cfg(unix)]
pub(crate) fn open_beneath(root: &Path, below: &Path) -> io::Result<File> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    fn open_at(dir: Option<&OwnedFd>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
        let name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
        let base = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
        // SAFETY: `name` is a valid C string for the call's duration and `base` is an open
        // descriptor (or AT_FDCWD); the result is checked before it is owned.
        let fd = unsafe { libc::openat(base, name.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by openat and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    let names: Vec<&std::ffi::OsStr> = below
        .components()
        .map(|component| match component {
            Component::Normal(name) => Ok(name),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path below the allowed directory is not plain names",
            )),
        })
        .collect::<io::Result<_>>()?;
    let Some((last, dirs)) = names.split_last() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "that is an allowed directory itself, not a file",
        ));
    };
    let directory = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let mut dir = open_at(None, root.as_os_str().as_bytes(), directory)?;
    for name in dirs {
        dir = open_at(Some(&dir), name.as_bytes(), directory)?;
    }
    let file = open_at(
        Some(&dir),
        last.as_bytes(),
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )?;
    Ok(File::from(file))
}

/// Elsewhere: opens the joined path (no race-free open is available here).
#[cfg(not(unix))]
pub fn open_beneath(root: &Path, below: &Path) -> io::Result<File> {
    File::open(root.join(below))
}

/// Whether an error means a symlink was met on the way (`O_NOFOLLOW` on the last
/// component, `O_DIRECTORY` on one that is a link to a file).
pub(crate) fn is_link_refusal(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn symlinks_on_the_way_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/ok"), b"o").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("file"))
            .unwrap();
        assert!(open_beneath(root.path(), Path::new("sub/ok")).is_ok());
        for bad in ["link/secret", "file"] {
            let error = open_beneath(root.path(), Path::new(bad)).unwrap_err();
            assert!(is_link_refusal(&error), "{bad}: {error}");
        }
        assert!(open_beneath(root.path(), Path::new("../x")).is_err());
    }
}
