//! Open connections per client IP, exact. An entry lives only while its IP has an open
//! connection, so the table never holds more entries than there are sockets (bounded by
//! the process's file descriptors) and needs no eviction. Touched at accept and close
//! only, under one of 64 shard locks held for a hash-map operation.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::{ip_key, Shield};

const SHARDS: usize = 64;

pub struct ConnTable {
    cap: u32,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<u128, u32>>]>,
}

impl ConnTable {
    /// `cap` connections per IP; 0: unlimited (nothing is counted).
    pub fn new(cap: u32) -> ConnTable {
        ConnTable {
            cap,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: u128) -> &Mutex<HashMap<u128, u32>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// One more connection of `key`; false when it already has `cap`.
    fn acquire(&self, key: u128) -> bool {
        let mut m = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= self.cap {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, key: u128) {
        let mut m = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&key);
            }
        }
    }

    /// Connections `ip` holds now.
    pub fn count(&self, ip: IpAddr) -> u32 {
        let key = ip_key(ip);
        let m = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        m.get(&key).copied().unwrap_or(0)
    }

    /// Distinct IPs with open connections.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One counted connection; dropping it (the connection ended) gives the slot back.
pub struct ConnGuard {
    shield: Arc<Shield>,
    table: usize,
    key: u128,
}

impl ConnGuard {
    pub(super) fn acquire(shield: Arc<Shield>, table: usize, ip: IpAddr) -> Option<ConnGuard> {
        let t = shield.table(table);
        let key = ip_key(ip);
        if t.cap == 0 {
            return Some(ConnGuard {
                shield,
                table,
                key: u128::MAX,
            });
        }
        // Not `then_some`: a guard built eagerly and dropped would release a slot.
        if !t.acquire(key) {
            return None;
        }
        Some(ConnGuard { shield, table, key })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let t = self.shield.table(self.table);
        if t.cap > 0 {
            t.release(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shield::{Limits, Port};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_cap_is_per_ip_and_closing_frees_a_slot() {
        let shield = Shield::new(
            Limits {
                max_connections_per_ip: 2,
                ..Limits::default()
            },
            &prometheus::Registry::new(),
        );
        let a1 = shield.admit(Port::Data, ip("10.0.0.1")).expect("first");
        let _a2 = shield.admit(Port::Data, ip("10.0.0.1")).expect("second");
        assert!(shield.admit(Port::Data, ip("10.0.0.1")).is_none(), "third");
        // Another IP and the other port group are counted apart.
        let _b = shield.admit(Port::Data, ip("10.0.0.2")).expect("other ip");
        let _admin = shield.admit(Port::Admin, ip("10.0.0.1")).expect("admin");
        assert_eq!(shield.table(0).count(ip("10.0.0.1")), 2);
        drop(a1);
        assert_eq!(shield.table(0).count(ip("10.0.0.1")), 1);
        let _a3 = shield
            .admit(Port::Data, ip("10.0.0.1"))
            .expect("slot freed");
    }

    #[test]
    fn entries_go_away_with_their_last_connection() {
        let t = ConnTable::new(3);
        for i in 0..1000u32 {
            assert!(t.acquire(u128::from(i)));
        }
        assert_eq!(t.len(), 1000);
        for i in 0..1000u32 {
            t.release(u128::from(i));
        }
        assert!(t.is_empty(), "no entry outlives its connections");
        // A release without an acquire never underflows or inserts.
        t.release(7);
        assert!(t.is_empty());
    }

    #[test]
    fn concurrent_accepts_never_pass_the_cap() {
        let t = Arc::new(ConnTable::new(50));
        let admitted: u32 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || (0..100).filter(|_| t.acquire(42)).count() as u32)
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        assert_eq!(admitted, 50);
    }

    #[test]
    fn zero_means_unlimited() {
        let shield = Shield::new(
            Limits {
                max_connections_per_ip: 0,
                ..Limits::default()
            },
            &prometheus::Registry::new(),
        );
        let guards: Vec<_> = (0..1000)
            .map(|_| shield.admit(Port::Data, ip("10.0.0.1")).expect("unlimited"))
            .collect();
        assert_eq!(guards.len(), 1000);
        assert!(shield.table(0).is_empty(), "nothing counted when off");
    }
}
