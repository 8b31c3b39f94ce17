//! Who may hold a connection on a listening port. Every accepted connection costs a task, a
//! descriptor and buffers before its peer has proved anything, so each port admits at most
//! `max_connections` at once, and at most `max_per_address` from one address (an IPv6 peer is
//! counted by its /64, the block one host is usually given, so that it cannot fill the port by
//! rotating addresses inside it).
//!
//! [`AdmissionCounter`] is the rule, a plain value driven with addresses; [`Admission`] shares
//! one between an accept loop and the connections it admitted, each holding an [`Admitted`]
//! that gives its place back when dropped.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many connections a port holds at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open on the port, from all peers together.
    pub max_connections: usize,
    /// Connections open from one address (IPv6: one /64).
    pub max_per_address: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The port holds `max_connections` already.
    #[error("the port holds its maximum of {0} connections")]
    PortFull(usize),
    /// The peer's address holds `max_per_address` already.
    #[error("this address holds its maximum of {0} connections")]
    AddressFull(usize),
}

/// The address a connection is counted under: IPv4 as is (an IPv4-mapped IPv6 address as the
/// IPv4 address it maps), IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The open connections of one port, by address.
#[derive(Debug, Clone)]
pub struct AdmissionCounter {
    limits: ConnectionLimits,
    open: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl AdmissionCounter {
    /// An empty port with `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            open: 0,
            by_address: HashMap::new(),
        }
    }

    /// Counts a new connection from `ip`, or says why it may not open.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.open >= self.limits.max_connections {
            return Err(Refusal::PortFull(self.limits.max_connections));
        }
        let here = self.by_address.entry(address_key(ip)).or_insert(0);
        if *here >= self.limits.max_per_address {
            return Err(Refusal::AddressFull(self.limits.max_per_address));
        }
        *here += 1;
        self.open += 1;
        Ok(())
    }

    /// Forgets a connection from `ip` that [`admit`](Self::admit) counted.
    pub fn release(&mut self, ip: IpAddr) {
        let key = address_key(ip);
        if let Some(here) = self.by_address.get_mut(&key) {
            *here -= 1;
            if *here == 0 {
                self.by_address.remove(&key);
            }
            self.open -= 1;
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Connections open now from `ip`'s address.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.by_address.get(&address_key(ip)).copied().unwrap_or(0)
    }

    /// Addresses holding at least one connection (bounded by `max_connections`).
    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }

    /// The limits applied.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }
}

#[derive(Debug)]
struct Shared {
    counter: Mutex<AdmissionCounter>,
    refused: AtomicU64,
}

/// One port's [`AdmissionCounter`], shared by its accept loop and its connections.
#[derive(Debug, Clone)]
pub struct Admission {
    shared: Arc<Shared>,
}

impl Admission {
    /// A port with `limits` and no connection yet.
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                counter: Mutex::new(AdmissionCounter::new(limits)),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// Admits a connection from `ip`; it holds its place until the [`Admitted`] is dropped.
    pub fn try_admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let admitted = lock(&self.shared.counter).admit(ip);
        match admitted {
            Ok(()) => Ok(Admitted {
                shared: self.shared.clone(),
                ip,
            }),
            Err(refusal) => {
                self.shared.refused.fetch_add(1, Ordering::Relaxed);
                Err(refusal)
            }
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.shared.counter).open()
    }

    /// Connections refused since the port opened.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// The limits applied.
    pub fn limits(&self) -> ConnectionLimits {
        lock(&self.shared.counter).limits()
    }
}

/// A connection's place on its port, given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.shared.counter).release(self.ip);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The counter is updated in one step under the lock; a panic elsewhere cannot tear it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let mut c = AdmissionCounter::new(ConnectionLimits {
            max_connections: 10,
            max_per_address: 2,
        });
        assert_eq!(c.admit(ip("10.0.0.1")), Ok(()));
        assert_eq!(c.admit(ip("10.0.0.1")), Ok(()));
        assert_eq!(c.admit(ip("10.0.0.1")), Err(Refusal::AddressFull(2)));
        assert_eq!(c.admit(ip("10.0.0.2")), Ok(()));
        assert_eq!(c.open(), 3);
        assert_eq!(c.open_from(ip("10.0.0.1")), 2);
        c.release(ip("10.0.0.1"));
        assert_eq!(c.admit(ip("10.0.0.1")), Ok(()));
    }

    #[test]
    fn the_port_is_full_whoever_asks() {
        let mut c = AdmissionCounter::new(ConnectionLimits {
            max_connections: 3,
            max_per_address: 3,
        });
        for a in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            assert_eq!(c.admit(ip(a)), Ok(()));
        }
        assert_eq!(c.admit(ip("10.0.0.4")), Err(Refusal::PortFull(3)));
        c.release(ip("10.0.0.2"));
        assert_eq!(c.admit(ip("10.0.0.4")), Ok(()));
        assert_eq!(c.addresses(), 3);
    }

    #[test]
    fn ipv6_is_counted_by_its_64_and_mapped_ipv4_as_ipv4() {
        let mut c = AdmissionCounter::new(ConnectionLimits {
            max_connections: 100,
            max_per_address: 2,
        });
        assert_eq!(c.admit(ip("2001:db8:1:2::1")), Ok(()));
        assert_eq!(c.admit(ip("2001:db8:1:2:ffff::9")), Ok(()));
        assert_eq!(
            c.admit(ip("2001:db8:1:2:1234::1")),
            Err(Refusal::AddressFull(2))
        );
        assert_eq!(c.admit(ip("2001:db8:1:3::1")), Ok(()));
        assert_eq!(c.admit(ip("192.0.2.7")), Ok(()));
        assert_eq!(c.admit(ip("::ffff:192.0.2.7")), Ok(()));
        assert_eq!(
            c.admit(ip("::ffff:192.0.2.7")),
            Err(Refusal::AddressFull(2))
        );
    }

    #[test]
    fn releasing_an_unknown_address_changes_nothing() {
        let mut c = AdmissionCounter::new(ConnectionLimits {
            max_connections: 1,
            max_per_address: 1,
        });
        c.release(ip("10.0.0.9"));
        assert_eq!(c.open(), 0);
        assert_eq!(c.admit(ip("10.0.0.1")), Ok(()));
        c.release(ip("10.0.0.1"));
        c.release(ip("10.0.0.1"));
        assert_eq!(c.open(), 0);
        assert_eq!(c.addresses(), 0);
    }

    #[test]
    fn a_dropped_place_is_given_back() {
        let port = Admission::new(ConnectionLimits {
            max_connections: 1,
            max_per_address: 1,
        });
        let first = port.try_admit(ip("10.0.0.1"));
        assert!(first.is_ok());
        assert!(matches!(
            port.try_admit(ip("10.0.0.2")),
            Err(Refusal::PortFull(1))
        ));
        assert_eq!(port.refused(), 1);
        drop(first);
        assert_eq!(port.open(), 0);
        assert!(port.try_admit(ip("10.0.0.2")).is_ok());
    }
}
