//! Attachments of `create_task`: decoding, the allowed-roots check, limits.
//!
//! Everything is checked before anything is sent: a refused file means no request at all.
//! A local file is opened once, here, without following links below the allowed directory
//! ([`super::beneath`]), and the open handle is what gets streamed later, exactly as many
//! bytes as were checked ([`crate::handinger::attachment::exact_stream`]), so a path swapped for a symlink cannot change
//! what leaves the machine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{FileLimits, validate_name};
use crate::handinger::attachment::{Upload, UploadSource};

/// One file to attach: either `path`, or `name` + `content` (+ `mediaType`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileArg {
    /// A local file to attach, by absolute path. Only files inside the directories the user
    /// allowed (the server's --allow-dir, or the client's roots) can be sent.
    #[serde(default)]
    pub path: Option<String>,
    /// File name for inline content, e.g. "data.csv".
    #[serde(default)]
    pub name: Option<String>,
    /// Inline file content, base64-encoded (standard alphabet).
    #[serde(default)]
    pub content: Option<String>,
    /// Media type of the file, e.g. "text/csv". Guessed from the name when omitted.
    #[serde(default)]
    pub media_type: Option<String>,
}

/// Where local files may come from. Directories are canonical (symlinks resolved).
#[derive(Debug, Clone, Default)]
pub struct AllowedRoots {
    pub dirs: Vec<PathBuf>,
}

impl AllowedRoots {
    /// Canonicalizes the configured directories; a missing one is a start-up error.
    pub fn from_config(dirs: &[PathBuf]) -> Result<Self, String> {
        let dirs = dirs
            .iter()
            .map(|dir| {
                let canonical = std::fs::canonicalize(dir).map_err(|e| {
                    format!(
                        "--allow-dir {}: {e}; give an existing directory",
                        dir.display()
                    )
                })?;
                if !canonical.is_dir() {
                    return Err(format!("--allow-dir {} is not a directory", dir.display()));
                }
                Ok(canonical)
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { dirs })
    }

    /// These roots plus the client's (`file://` URIs); unusable client roots are skipped.
    pub fn with_client_roots<'a>(&self, uris: impl Iterator<Item = &'a str>) -> Self {
        let mut dirs = self.dirs.clone();
        for uri in uris {
            let path = reqwest::Url::parse(uri)
                .ok()
                .filter(|u| u.scheme() == "file")
                .and_then(|u| u.to_file_path().ok())
                .and_then(|p| std::fs::canonicalize(p).ok());
            match path {
                Some(dir) if dir.is_dir() => dirs.push(dir),
                _ => tracing::debug!(uri, "ignoring a client root that is not a local directory"),
            }
        }
        Self { dirs }
    }

    /// The allowed directory `path` is in, and the rest of the path below it.
    fn split<'a>(&'a self, path: &'a Path) -> Option<(&'a Path, &'a Path)> {
        self.dirs
            .iter()
            .find_map(|dir| Some((dir.as_path(), path.strip_prefix(dir).ok()?)))
    }

    fn describe(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks every attachment of a call; the first problem refuses the whole call.
///
/// `roots` is `None` where local paths make no sense (a remote server).
pub(crate) fn prepare(
    files: Vec<FileArg>,
    roots: Option<&AllowedRoots>,
    limits: &FileLimits,
) -> Result<Vec<Upload>, String> {
    if files.len() > limits.max_files {
        return Err(format!(
            "{} files attached; the limit is {} (--max-files)",
            files.len(),
            limits.max_files
        ));
    }
    let mut total = 0u64;
    let mut uploads = Vec::with_capacity(files.len());
    for (index, file) in files.into_iter().enumerate() {
        let upload =
            prepare_one(file, roots, limits).map_err(|e| format!("files[{index}]: {e}"))?;
        total += upload.len();
        if total > limits.max_total_bytes {
            return Err(format!(
                "the attached files add up to more than {} bytes (--max-total-file-bytes)",
                limits.max_total_bytes
            ));
        }
        uploads.push(upload);
    }
    Ok(uploads)
}

fn prepare_one(
    file: FileArg,
    roots: Option<&AllowedRoots>,
    limits: &FileLimits,
) -> Result<Upload, String> {
    match file {
        FileArg {
            path: Some(path),
            name: None,
            content: None,
            media_type,
        } => {
            let roots = roots.ok_or(
                "local paths cannot be attached on this server (it does not run on your machine); send the file inline as name + content (base64)",
            )?;
            local_file(&path, media_type, roots, limits)
        }
        FileArg {
            path: None,
            name: Some(name),
            content: Some(content),
            media_type,
        } => inline_file(name, &content, media_type, limits),
        _ => Err("give either path, or name and content (base64), for each file".into()),
    }
}

fn local_file(
    raw: &str,
    media_type: Option<String>,
    roots: &AllowedRoots,
    limits: &FileLimits,
) -> Result<Upload, String> {
    if roots.dirs.is_empty() {
        return Err(
            "local files are not allowed: start handinger-mcp with --allow-dir DIR (or HANDINGER_MCP_ALLOW_DIRS), use a client that shares its roots, or send the file inline as name + content (base64)".into(),
        );
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(format!("path {raw:?} is relative; give an absolute path"));
    }
    // Where the path points now: this only picks the allowed directory and the names below
    // it. What is sent is decided by the open below, which walks those names from the
    // directory without following a link, so a swap after this line changes nothing.
    let canonical = std::fs::canonicalize(path).map_err(|e| format!("cannot read {raw:?}: {e}"))?;
    let Some((root, below)) = roots.split(&canonical) else {
        return Err(format!(
            "{raw:?} is outside the allowed directories ({}); move the file there or allow its directory with --allow-dir",
            roots.describe()
        ));
    };
    let file = super::beneath::open_beneath(root, below).map_err(|e| {
        if super::beneath::is_link_refusal(&e) {
            format!(
                "{raw:?} changed while it was being opened (a directory on its path became a symbolic link); nothing was sent: attach it again"
            )
        } else {
            format!("cannot open {raw:?}: {e}")
        }
    })?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot read {raw:?}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!(
            "{raw:?} is not a regular file (a directory, FIFO, socket or device); attach a file"
        ));
    }
    let too_large = |len: u64| {
        format!(
            "{raw:?} is {len} bytes; the limit is {} (--max-file-bytes)",
            limits.max_file_bytes
        )
    };
    if metadata.len() > limits.max_file_bytes {
        return Err(too_large(metadata.len()));
    }
    let name = canonical
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{raw:?} has no usable file name"))?
        .to_owned();
    validate_name(&name)?;
    let source = if metadata.len() == 0 {
        // Files under /proc and /sys report a size of 0 and have content: read what is
        // there, bounded by the limit, and send exactly that.
        let mut bytes = Vec::new();
        (&file)
            .take(limits.max_file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {raw:?}: {e}"))?;
        if bytes.len() as u64 > limits.max_file_bytes {
            return Err(format!(
                "{raw:?} holds more than {} bytes (--max-file-bytes)",
                limits.max_file_bytes
            ));
        }
        UploadSource::Memory(Bytes::from(bytes))
    } else {
        UploadSource::Disk {
            file: Arc::new(file),
            len: metadata.len(),
        }
    };
    Ok(Upload {
        media_type: media_type_for(&name, media_type)?,
        name,
        source,
    })
}

fn inline_file(
    name: String,
    content: &str,
    media_type: Option<String>,
    limits: &FileLimits,
) -> Result<Upload, String> {
    validate_name(&name)?;
    // Base64 carries 3 bytes in 4 characters: refuse an oversized file before decoding it.
    if (content.len() as u64 / 4) * 3 > limits.max_file_bytes + 3 {
        return Err(format!(
            "{name:?} is larger than {} bytes (--max-file-bytes)",
            limits.max_file_bytes
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content.trim())
        .map_err(|e| {
            format!("content of {name:?} is not valid base64 (standard alphabet, padded): {e}")
        })?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(format!(
            "{name:?} is {} bytes; the limit is {} (--max-file-bytes)",
            bytes.len(),
            limits.max_file_bytes
        ));
    }
    Ok(Upload {
        media_type: media_type_for(&name, media_type)?,
        name,
        source: UploadSource::Memory(Bytes::from(bytes)),
    })
}

fn media_type_for(name: &str, given: Option<String>) -> Result<String, String> {
    match given {
        Some(media_type) => {
            let valid = media_type.split_once('/').is_some_and(|(kind, sub)| {
                !kind.is_empty()
                    && !sub.is_empty()
                    && media_type.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            });
            if valid {
                Ok(media_type)
            } else {
                Err(format!(
                    "mediaType {media_type:?} is not a media type such as text/csv"
                ))
            }
        }
        None => Ok(mime_guess::from_path(name)
            .first_or_octet_stream()
            .essence_str()
            .to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FileLimits {
        FileLimits {
            max_files: 2,
            max_file_bytes: 10,
            max_total_bytes: 15,
        }
    }

    fn inline(name: &str, content: &str) -> FileArg {
        FileArg {
            path: None,
            name: Some(name.into()),
            content: Some(content.into()),
            media_type: None,
        }
    }

    #[test]
    fn inline_files_are_decoded_and_typed() {
        let uploads = prepare(vec![inline("a.csv", "eCx5")], None, &limits()).unwrap();
        assert_eq!(uploads[0].media_type, "text/csv");
        assert_eq!(uploads[0].len(), 3);
    }

    #[test]
    fn limits_and_bad_content_are_refused() {
        let l = limits();
        assert!(
            prepare(vec![inline("a", "!!")], None, &l)
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            prepare(vec![inline("a", &"QUFB".repeat(4))], None, &l)
                .unwrap_err()
                .contains("--max-file-bytes")
        );
        let three = vec![
            inline("a", "QQ=="),
            inline("b", "QQ=="),
            inline("c", "QQ=="),
        ];
        assert!(
            prepare(three, None, &l)
                .unwrap_err()
                .contains("--max-files")
        );
        let total = vec![inline("a", "QUFBQUFBQUE="), inline("b", "QUFBQUFBQUE=")];
        assert!(
            prepare(total, None, &l)
                .unwrap_err()
                .contains("--max-total-file-bytes")
        );
    }

    #[test]
    fn local_paths_need_roots() {
        let file = FileArg {
            path: Some("/etc/hostname".into()),
            name: None,
            content: None,
            media_type: None,
        };
        let err = prepare(vec![file], Some(&AllowedRoots::default()), &limits()).unwrap_err();
        assert!(err.contains("--allow-dir"), "{err}");
    }
}
