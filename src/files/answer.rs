//! Files a worker produced: local copies in `--download-dir`, small images inlined, and the
//! bytes behind the `handinger://tasks/{taskId}/files/{name}` resources.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use rmcp::model::ResourceContents;

use super::validate_name;
use crate::handinger::types::AnswerFile;
use crate::handinger::{ApiError, HandingerClient};

/// What to do with answer files besides linking them.
#[derive(Debug, Clone, Default)]
pub struct AnswerFileOptions {
    /// Save every answer file here.
    pub download_dir: Option<PathBuf>,
    /// Return images up to this many bytes inline as image content.
    pub inline_images_up_to: Option<u64>,
    /// Largest file fetched at all.
    pub max_file_bytes: u64,
    /// Most files of one answer fetched (`--max-answer-files`).
    pub max_files: usize,
    /// Most bytes of one answer's files fetched, all together (`--max-answer-bytes`).
    pub max_total_bytes: u64,
}

impl AnswerFileOptions {
    pub fn wants_anything(&self) -> bool {
        self.download_dir.is_some() || self.inline_images_up_to.is_some()
    }
}

/// What the bridge did with one answer file, by its URL.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LocalCopy {
    pub url: String,
    /// Where it was saved.
    pub path: Option<PathBuf>,
    /// Media type and base64 bytes of an image to show inline.
    pub image: Option<(String, String)>,
    /// Why it was not saved or inlined, when something went wrong; shown in the result.
    pub problem: Option<String>,
}

/// Fetches what the options ask for, within the per-answer caps. Failures and skipped files
/// become notes on the copy, never errors: the answer itself stands without them.
pub async fn local_copies(
    api: &HandingerClient,
    files: &[AnswerFile],
    options: &AnswerFileOptions,
) -> Vec<LocalCopy> {
    let mut copies = Vec::new();
    if !options.wants_anything() {
        return copies;
    }
    let (mut fetched, mut total) = (0usize, 0u64);
    for file in files {
        let Some(url) = file.url.as_deref().filter(|u| !u.is_empty()) else {
            continue;
        };
        let media_type = file.media_type.clone().unwrap_or_default();
        let inline_cap = options
            .inline_images_up_to
            .filter(|_| media_type.starts_with("image/"))
            .filter(|cap| file.size.is_none_or(|size| size <= *cap as f64));
        if options.download_dir.is_none() && inline_cap.is_none() {
            continue;
        }
        let mut copy = LocalCopy {
            url: url.to_owned(),
            ..Default::default()
        };
        let remaining = options.max_total_bytes.saturating_sub(total);
        if let Err(problem) = answer_name(file.filename.as_deref()) {
            copy.problem = Some(format!("not fetched: {problem}"));
        } else if fetched >= options.max_files {
            copy.problem = Some(format!(
                "skipped: the answer has more files than the {} this server fetches per answer (--max-answer-files)",
                options.max_files
            ));
        } else if file.size.is_some_and(|size| size > remaining as f64) {
            copy.problem = Some(total_cap_note(options));
        } else {
            fetched += 1;
            let limit = options.max_file_bytes.min(remaining);
            match api.download(url, limit).await {
                Ok((bytes, _)) => {
                    total += bytes.len() as u64;
                    if let Some(dir) = &options.download_dir {
                        let name = file.filename.clone().unwrap_or_default();
                        match save_unique(dir, &name, url, &bytes) {
                            Ok(path) => copy.path = Some(path),
                            Err(e) => {
                                copy.problem = Some(format!(
                                    "not saved in --download-dir {}: {e}",
                                    dir.display()
                                ))
                            }
                        }
                    }
                    if let Some(cap) = inline_cap
                        && bytes.len() as u64 <= cap
                    {
                        let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
                        copy.image = Some((media_type.clone(), data));
                    }
                }
                Err(ApiError::TooLarge { .. }) if limit < options.max_file_bytes => {
                    copy.problem = Some(total_cap_note(options));
                }
                Err(e) => copy.problem = Some(format!("could not fetch it: {e}")),
            }
        }
        if let Some(problem) = &copy.problem {
            tracing::warn!(%problem, "answer file not kept");
        }
        copies.push(copy);
    }
    copies
}

fn total_cap_note(options: &AnswerFileOptions) -> String {
    format!(
        "skipped: the answer's files add up to more than the {} bytes this server fetches per answer (--max-answer-bytes)",
        options.max_total_bytes
    )
}

/// An answer's own file name, when it gives one, must be usable as it is: a name made to
/// look like another (bidirectional overrides) or a blank one is refused, not repaired.
fn answer_name(name: Option<&str>) -> Result<(), String> {
    match name {
        None | Some("") => Ok(()),
        Some(name) => validate_name(name).map_err(|e| format!("refused the file name: {e}")),
    }
}

/// Writes `bytes` into `dir` under a safe form of `name`, never replacing an existing
/// file: `report.csv`, then `report (1).csv`, and so on.
pub fn save_unique(dir: &Path, name: &str, url: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let name = safe_name(name, url);
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
        _ => (name.clone(), String::new()),
    };
    for n in 0..1000 {
        let candidate = if n == 0 {
            dir.join(&name)
        } else {
            dir.join(format!("{stem} ({n}){extension}"))
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(mut file) => {
                file.write_all(bytes)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "1000 files named like {name} already exist in {}",
        dir.display()
    )))
}

/// The answer's file name if it is a plain name, else the URL's last segment, else "file".
fn safe_name(name: &str, url: &str) -> String {
    if validate_name(name).is_ok() && !name.starts_with('.') {
        return name.to_owned();
    }
    let last = url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    if validate_name(&decoded).is_ok() && !decoded.starts_with('.') {
        decoded.into_owned()
    } else {
        "file".into()
    }
}

/// Resource contents for fetched bytes: text for textual types that are valid UTF-8,
/// base64 otherwise. The type is the one the answer declared; no sniffing beyond it.
pub fn resource_contents(uri: &str, bytes: Bytes, media_type: Option<String>) -> ResourceContents {
    let media_type = media_type.unwrap_or_else(|| "application/octet-stream".into());
    if is_textual(&media_type)
        && let Ok(text) = String::from_utf8(bytes.to_vec())
    {
        return ResourceContents::TextResourceContents {
            uri: uri.to_owned(),
            mime_type: Some(media_type),
            text,
            meta: None,
        };
    }
    ResourceContents::BlobResourceContents {
        uri: uri.to_owned(),
        mime_type: Some(media_type),
        blob: base64::engine::general_purpose::STANDARD.encode(&bytes),
        meta: None,
    }
}

fn is_textual(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/json" | "application/xml" | "application/javascript" | "application/yaml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_files_never_overwrite_and_names_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = save_unique(dir.path(), "report.csv", "https://x/r", b"1").unwrap();
        let second = save_unique(dir.path(), "report.csv", "https://x/r", b"2").unwrap();
        assert_eq!(first.file_name().unwrap(), "report.csv");
        assert_eq!(second.file_name().unwrap(), "report (1).csv");
        assert_eq!(std::fs::read(&first).unwrap(), b"1");
        let escaped = save_unique(
            dir.path(),
            "../../etc/passwd",
            "https://x/a/b%2F..%2Fc.txt",
            b"3",
        )
        .unwrap();
        assert_eq!(escaped.parent().unwrap(), dir.path());
        assert_eq!(escaped.file_name().unwrap(), "file");
        let hidden = save_unique(dir.path(), ".bashrc", "https://x/", b"4").unwrap();
        assert_eq!(hidden.file_name().unwrap(), "file (1)");
    }

    #[test]
    fn text_types_become_text_and_others_blobs() {
        let text = resource_contents("u", Bytes::from_static(b"a,b"), Some("text/csv".into()));
        assert!(matches!(
            text,
            ResourceContents::TextResourceContents { .. }
        ));
        let blob = resource_contents(
            "u",
            Bytes::from_static(b"\x89PNG"),
            Some("image/png".into()),
        );
        assert!(matches!(
            blob,
            ResourceContents::BlobResourceContents { .. }
        ));
        let bad_utf8 =
            resource_contents("u", Bytes::from_static(b"\xff"), Some("text/plain".into()));
        assert!(matches!(
            bad_utf8,
            ResourceContents::BlobResourceContents { .. }
        ));
    }
}
