//! The disk the answer files saved in `--download-dir` may take, all answers together
//! (`--max-download-dir-bytes`): when a new file would not fit, the oldest files this
//! server saved are deleted to make room. Without it every answer's files stayed forever
//! (each answer is bounded by `--max-answer-bytes`, but answers are not).
//!
//! Only files this process saved are counted and deleted: the directory may hold the
//! user's own files, which are never touched, and files saved before a restart are no
//! longer known.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The default of `--max-download-dir-bytes`: 1 GiB.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug)]
pub struct DiskBudget {
    max_bytes: u64,
    ledger: Mutex<Ledger>,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Files saved, oldest first, with their sizes.
    saved: VecDeque<(PathBuf, u64)>,
    saved_bytes: u64,
    /// Room promised to files being written.
    reserved: u64,
}

/// Room for one file being saved; given back if it is dropped before [`Self::saved`].
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<DiskBudget>,
    bytes: u64,
    /// Moved into the ledger: nothing to give back.
    settled: bool,
}

impl DiskBudget {
    pub fn new(max_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            max_bytes,
            ledger: Mutex::new(Ledger::default()),
        })
    }

    /// Room for a file of `bytes`, and the files to delete (oldest first) to make it, which
    /// the caller deletes before writing; or why there is none.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<(Reservation, Vec<PathBuf>), String> {
        let max = self.max_bytes;
        if bytes > max {
            return Err(format!(
                "it is larger than the {max} bytes all saved answer files may take \
                 (--max-download-dir-bytes)"
            ));
        }
        let mut ledger = self.lock();
        if ledger.reserved + bytes > max {
            // Room promised to files being written right now cannot be made.
            return Err(format!(
                "the {max} bytes saved answer files may take (--max-download-dir-bytes) are \
                 held by files still being saved; fetch it again later"
            ));
        }
        let mut evicted = Vec::new();
        while ledger.saved_bytes + ledger.reserved + bytes > max {
            let Some((path, size)) = ledger.saved.pop_front() else {
                break;
            };
            ledger.saved_bytes -= size;
            evicted.push(path);
        }
        ledger.reserved += bytes;
        Ok((
            Reservation {
                budget: self.clone(),
                bytes,
                settled: false,
            },
            evicted,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reservation {
    /// The file was written at `path`: it now counts as saved, and is the newest.
    pub fn saved(mut self, path: PathBuf) {
        let mut ledger = self.budget.lock();
        ledger.reserved -= self.bytes;
        ledger.saved_bytes += self.bytes;
        ledger.saved.push_back((path, self.bytes));
        self.settled = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.budget.lock().reserved -= self.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_saved_files_make_room_and_oversized_ones_are_refused() {
        let budget = DiskBudget::new(10);
        let (a, none) = budget.reserve(4).unwrap();
        assert!(none.is_empty());
        a.saved("a".into());
        let (b, _) = budget.reserve(4).unwrap();
        b.saved("b".into());
        let (c, evicted) = budget.reserve(4).unwrap();
        assert_eq!(evicted, [PathBuf::from("a")]);
        // Not yet written: its room is promised, not saved.
        let refused = budget.reserve(8).unwrap_err();
        assert!(refused.contains("still being saved"), "{refused}");
        drop(c);
        let (d, evicted) = budget.reserve(8).unwrap();
        assert_eq!(evicted, [PathBuf::from("b")]);
        d.saved("d".into());
        assert!(
            budget
                .reserve(11)
                .unwrap_err()
                .contains("--max-download-dir-bytes")
        );
    }
}
