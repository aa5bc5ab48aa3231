//! Connections per client address: how many one address holds open, and how many of those
//! have not yet sent a complete first request head (half-open).
//!
//! The global caps of [`super::connections`] keep the server alive under a flood, but
//! alone they let one address take every place: opening heads it never finishes, it filled
//! `--max-connections` and then the probe reserve with its own half-sent `GET /healthz`, so
//! other clients were refused and liveness probes failed. Counted per address at accept,
//! before anything is read, one address holds at most `--max-connections-per-client`
//! connections, and at most `--max-pending-connections-per-client` of them half-open (a
//! real client sends its head as soon as it connects, so only a flood holds many). Beyond
//! either it gets a canned 429 and the connection is closed.
//!
//! An address is [`super::limits::client_address`]'s: an IPv6 client by its /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The two bounds per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimits {
    pub max_open: usize,
    pub max_pending: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The address holds `--max-connections-per-client` connections.
    Open,
    /// The address holds `--max-pending-connections-per-client` half-open connections.
    Pending,
}

impl Refusal {
    /// What the refused connection is sent before it is closed: written without waiting,
    /// on a fresh socket whose send buffer has room.
    pub(super) fn canned_answer(self) -> &'static [u8] {
        match self {
            Refusal::Open => {
                b"HTTP/1.1 429 Too Many Requests\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\r\n\
Too Many Requests: your address holds as many connections as this server allows one \
client (--max-connections-per-client); reuse or close one, then retry\n"
            }
            Refusal::Pending => {
                b"HTTP/1.1 429 Too Many Requests\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\r\n\
Too Many Requests: your address holds as many connections that have not sent a complete \
request as this server allows one client (--max-pending-connections-per-client); send \
each request as soon as you connect, then retry\n"
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    open: usize,
    pending: usize,
}

/// The connections each address holds.
pub(super) struct PerAddress {
    limits: AddressLimits,
    table: Mutex<HashMap<IpAddr, Counts>>,
}

impl PerAddress {
    pub(super) fn new(limits: AddressLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            table: Mutex::new(HashMap::new()),
        })
    }

    fn table(&self) -> MutexGuard<'_, HashMap<IpAddr, Counts>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more connection from `address` (half-open until
    /// [`Place::head_received`]), or why not.
    pub(super) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Place, Refusal> {
        let mut table = self.table();
        // Both bounds are at least 1, so an address is refused only while it holds a
        // connection: no entry is made for nothing.
        let counts = table.entry(address).or_default();
        if counts.open >= self.limits.max_open {
            return Err(Refusal::Open);
        }
        if counts.pending >= self.limits.max_pending {
            return Err(Refusal::Pending);
        }
        counts.open += 1;
        counts.pending += 1;
        Ok(Place {
            table: self.clone(),
            address,
            pending: AtomicBool::new(true),
        })
    }

    #[cfg(test)]
    fn counts(&self, address: IpAddr) -> (usize, usize) {
        self.table()
            .get(&address)
            .map_or((0, 0), |c| (c.open, c.pending))
    }
}

/// One connection's place under its address's bounds, given back when dropped.
pub(super) struct Place {
    table: Arc<PerAddress>,
    address: IpAddr,
    /// Until its first request head is complete.
    pending: AtomicBool,
}

impl Place {
    /// The connection's first request head is in: it no longer counts as half-open. Called
    /// for every request; only the first takes the lock.
    pub(super) fn head_received(&self) {
        if self.pending.load(Ordering::Relaxed)
            && self.pending.swap(false, Ordering::AcqRel)
            && let Some(counts) = self.table.table().get_mut(&self.address)
        {
            counts.pending = counts.pending.saturating_sub(1);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let still_pending = *self.pending.get_mut();
        let mut table = self.table.table();
        if let Some(counts) = table.get_mut(&self.address) {
            counts.open = counts.open.saturating_sub(1);
            if still_pending {
                counts.pending = counts.pending.saturating_sub(1);
            }
            if counts.open == 0 {
                table.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn half_open_then_open_bounds_per_address() {
        let table = PerAddress::new(AddressLimits {
            max_open: 3,
            max_pending: 2,
        });
        let first = table.admit(ip(1)).unwrap();
        let _second = table.admit(ip(1)).unwrap();
        assert_eq!(table.admit(ip(1)).err(), Some(Refusal::Pending));
        assert!(
            table.admit(ip(2)).is_ok(),
            "another address has its own share"
        );
        first.head_received();
        first.head_received();
        assert_eq!(table.counts(ip(1)), (2, 1));
        let _third = table.admit(ip(1)).unwrap();
        assert_eq!(table.admit(ip(1)).err(), Some(Refusal::Open));
        drop(first);
        assert_eq!(table.counts(ip(1)), (2, 2));
    }

    #[test]
    fn an_address_leaves_the_table_with_its_last_connection() {
        let table = PerAddress::new(AddressLimits {
            max_open: 1,
            max_pending: 1,
        });
        let place = table.admit(ip(1)).unwrap();
        assert!(table.admit(ip(1)).is_err());
        drop(place);
        assert!(table.table().is_empty());
        assert!(table.admit(ip(1)).is_ok());
    }
}
