//! Files a worker produced: local copies in `--download-dir` and small images inlined,
//! fetched in the background. (The `handinger://tasks/{taskId}/files/{name}` resources are
//! MCP's business: [`crate::tools`] serves them.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;

use super::disk_budget::{self, DiskBudget};
use super::download_queue::{DownloadQueue, Owner};
use super::validate_name;
use crate::handinger::types::AnswerFile;
use crate::handinger::{ApiError, HandingerClient};

/// Answer-file downloads running at once across the server, by default.
pub(crate) const DEFAULT_PARALLEL_DOWNLOADS: usize = 4;

/// What to do with answer files besides linking them.
#[derive(Debug, Clone)]
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
    /// Shared by every answer: bounds the downloads running at once
    /// (`--max-parallel-downloads`), handing freed slots round robin over keys and answers.
    pub download_queue: Arc<DownloadQueue>,
    /// Shared by every answer: the disk saved files may take in `download_dir`
    /// (`--max-download-dir-bytes`), oldest out first.
    pub disk_budget: Arc<DiskBudget>,
}

impl Default for AnswerFileOptions {
    fn default() -> Self {
        Self {
            download_dir: None,
            inline_images_up_to: None,
            max_file_bytes: 0,
            max_files: 0,
            max_total_bytes: 0,
            download_queue: DownloadQueue::new(DEFAULT_PARALLEL_DOWNLOADS),
            disk_budget: DiskBudget::new(disk_budget::DEFAULT_MAX_BYTES),
        }
    }
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
    /// Still being fetched in the background.
    pub pending: bool,
}

/// The copies of one answer's files, made in the background so that the answer itself is
/// published at once: each download waits for one of the server's download slots, in its
/// answer's turn ([`DownloadQueue`]), and is bounded by the request timeout, and each copy
/// is pending until its download ends.
#[derive(Debug, Default)]
pub struct AnswerCopies {
    slots: Vec<Slot>,
    /// The most a pending inline image may come to hold (its cap, as base64).
    image_cap: usize,
}

#[derive(Debug)]
struct Slot {
    url: String,
    /// Set once, when the copy is decided (at once for a refused file, after the download
    /// for the others).
    done: Arc<OnceLock<LocalCopy>>,
}

impl AnswerCopies {
    /// Decides what each file gets, within the per-answer caps, and starts the downloads.
    /// Failures and skipped files become notes on the copy, never errors: the answer itself
    /// stands without them.
    pub fn start(
        api: &HandingerClient,
        files: &[AnswerFile],
        options: &Arc<AnswerFileOptions>,
    ) -> Arc<Self> {
        let mut copies = AnswerCopies {
            slots: Vec::new(),
            image_cap: options.inline_images_up_to.map_or(0, |cap| {
                usize::try_from(cap.saturating_mul(4) / 3).unwrap_or(usize::MAX)
            }),
        };
        if !options.wants_anything() {
            return Arc::new(copies);
        }
        let owner = Owner {
            key: api.scope(),
            answer: options.download_queue.new_answer(),
        };
        let mut fetched = 0usize;
        // Declared sizes are reserved up front; actual sizes are counted as they arrive.
        let mut declared = 0u64;
        let received = Arc::new(AtomicU64::new(0));
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
            let done = Arc::new(OnceLock::new());
            let refuse = |problem: String| {
                tracing::warn!(%problem, "answer file not kept");
                LocalCopy {
                    url: url.to_owned(),
                    problem: Some(problem),
                    ..Default::default()
                }
            };
            let size = file.size.filter(|s| *s >= 0.0).map_or(0, |s| s as u64);
            if let Err(problem) = answer_name(file.filename.as_deref()) {
                let _ = done.set(refuse(format!("not fetched: {problem}")));
            } else if fetched >= options.max_files {
                let _ = done.set(refuse(format!(
                    "skipped: the answer has more files than the {} this server fetches per answer (--max-answer-files)",
                    options.max_files
                )));
            } else if declared.saturating_add(size) > options.max_total_bytes {
                let _ = done.set(refuse(total_cap_note(options)));
            } else {
                fetched += 1;
                declared += size;
                let download = Download {
                    api: api.clone(),
                    url: url.to_owned(),
                    name: file.filename.clone().unwrap_or_default(),
                    media_type,
                    inline_cap,
                    options: options.clone(),
                    received: received.clone(),
                    owner,
                };
                let slot = done.clone();
                tokio::spawn(async move {
                    let copy = download.run().await;
                    if let Some(problem) = &copy.problem {
                        tracing::warn!(%problem, "answer file not kept");
                    }
                    let _ = slot.set(copy);
                });
            }
            copies.slots.push(Slot {
                url: url.to_owned(),
                done,
            });
        }
        Arc::new(copies)
    }

    /// Each copy as it stands now: done, or pending.
    pub fn snapshot(&self) -> Vec<LocalCopy> {
        self.slots
            .iter()
            .map(|slot| {
                slot.done.get().cloned().unwrap_or_else(|| LocalCopy {
                    url: slot.url.clone(),
                    pending: true,
                    ..Default::default()
                })
            })
            .collect()
    }

    /// What the copies keep in memory, counting a pending inline image at the most it may
    /// hold (its cap, as base64), so a budget checked now holds once it arrives.
    pub fn retained_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|slot| {
                let held = match slot.done.get() {
                    Some(copy) => {
                        copy.path.as_ref().map_or(0, |p| p.as_os_str().len())
                            + copy
                                .image
                                .as_ref()
                                .map_or(0, |(kind, data)| kind.len() + data.len())
                            + copy.problem.as_ref().map_or(0, String::len)
                    }
                    None => self.image_cap,
                };
                slot.url.len() + held + 64
            })
            .sum()
    }
}

// A shared store (`--store`) keeps an answer with its copies as they stood when it was
// stored. Copies still pending then are left out: they are this replica's downloads, which
// another replica can neither see finish nor read from its own disk.
impl serde::Serialize for AnswerCopies {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let settled: Vec<LocalCopy> = self.snapshot().into_iter().filter(|c| !c.pending).collect();
        settled.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for AnswerCopies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let copies = Vec::<LocalCopy>::deserialize(deserializer)?;
        Ok(AnswerCopies {
            slots: copies
                .into_iter()
                .filter(|c| !c.pending)
                .map(|copy| Slot {
                    url: copy.url.clone(),
                    done: Arc::new(OnceLock::from(copy)),
                })
                .collect(),
            image_cap: 0,
        })
    }
}

/// One file to fetch, save and/or inline.
struct Download {
    api: HandingerClient,
    url: String,
    name: String,
    media_type: String,
    inline_cap: Option<u64>,
    options: Arc<AnswerFileOptions>,
    /// Bytes received by all of this answer's downloads so far.
    received: Arc<AtomicU64>,
    /// Whose turn it waits for.
    owner: Owner,
}

impl Download {
    async fn run(self) -> LocalCopy {
        let mut copy = LocalCopy {
            url: self.url.clone(),
            ..Default::default()
        };
        let _slot = self.options.download_queue.acquire(self.owner).await;
        let options = &self.options;
        let remaining = options
            .max_total_bytes
            .saturating_sub(self.received.load(Ordering::Relaxed));
        let limit = options.max_file_bytes.min(remaining);
        let bytes = match self.api.download(&self.url, limit).await {
            Ok((bytes, _)) => bytes,
            Err(ApiError::TooLarge { .. }) if limit < options.max_file_bytes => {
                copy.problem = Some(total_cap_note(options));
                return copy;
            }
            Err(e) => {
                copy.problem = Some(format!("could not fetch it: {e}"));
                return copy;
            }
        };
        let before = self
            .received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if before + bytes.len() as u64 > options.max_total_bytes {
            copy.problem = Some(total_cap_note(options));
            return copy;
        }
        if let Some(dir) = &options.download_dir {
            match options.disk_budget.reserve(bytes.len() as u64) {
                Ok((room, evicted)) => {
                    // Blocking file work stays off the async threads (the stdio server has
                    // one).
                    let (dir, name, url) = (dir.clone(), self.name.clone(), self.url.clone());
                    let data = bytes.clone();
                    let saved = tokio::task::spawn_blocking(move || {
                        remove_oldest(&evicted);
                        save_unique(&dir, &name, &url, &data)
                    })
                    .await;
                    copy.problem = match saved {
                        Ok(Ok(path)) => {
                            room.saved(path.clone());
                            copy.path = Some(path);
                            None
                        }
                        Ok(Err(e)) => Some(format!(
                            "not saved in --download-dir {}: {e}",
                            dir_shown(options)
                        )),
                        Err(e) => Some(format!("not saved: {e}")),
                    };
                }
                Err(why) => {
                    copy.problem = Some(format!(
                        "not saved in --download-dir {}: {why}",
                        dir_shown(options)
                    ));
                }
            }
        }
        if let Some(cap) = self.inline_cap
            && bytes.len() as u64 <= cap
        {
            let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
            copy.image = Some((self.media_type.clone(), data));
        }
        copy
    }
}

fn dir_shown(options: &AnswerFileOptions) -> String {
    options
        .download_dir
        .as_ref()
        .map_or_else(String::new, |d| d.display().to_string())
}

/// Deletes the files the disk budget gave up to make room (oldest first). One already gone
/// (deleted by hand) is no matter; another failure is logged, and the file is no longer
/// counted either way.
fn remove_oldest(paths: &[PathBuf]) {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "deleted the oldest saved answer file to stay within --max-download-dir-bytes"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "could not delete an old saved answer file (--max-download-dir-bytes)"
            ),
        }
    }
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
pub(crate) fn save_unique(
    dir: &Path,
    name: &str,
    url: &str,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
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
}
