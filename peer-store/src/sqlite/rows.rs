//! Changes as rows, and rows back into records.
//!
//! Encoding (text forms, nanoseconds) runs on the caller's task; decoding
//! runs on the store's thread, inside the type-erased continuation the
//! caller sent with its load (see `SqliteStore::load`).

use std::fmt::Display;
use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;
use rusqlite::{params, Connection, Transaction};

use crate::encode::{addr_text, from_nanos, from_unix_nanos, nanos, unix_nanos};
use crate::error::StoreError;
use crate::record::{Ban, Change, LastConnection, PeerRecord, Reason, Snapshot};

/// `peer_addr.kind` of a user-given address.
const USER: &str = "user";
/// `peer_addr.kind` of an advertised address.
const ADVERTISED: &str = "advertised";

/// A [`Change`] in the form it is written.
#[derive(Debug)]
pub(crate) enum Row {
    Persist {
        peer: String,
        reason: Reason,
    },
    Addrs {
        peer: String,
        kind: &'static str,
        addrs: Vec<String>,
    },
    LastConnection {
        peer: String,
        addr: String,
        at: i64,
        lasted: Option<i64>,
    },
    Backoff {
        peer: String,
        level: i64,
    },
    Remove {
        peer: String,
    },
    Ban {
        peer: String,
        until: i64,
    },
    Unban {
        peer: String,
    },
}

/// A change's row, or why it cannot be stored.
pub(crate) fn encode<A: Display + FromStr>(change: &Change<A>) -> Result<Row, StoreError> {
    let id = |peer: &PublicKey| peer.to_string();
    let addrs = |addrs: &[A]| addrs.iter().map(addr_text).collect::<Result<Vec<_>, _>>();
    Ok(match change {
        Change::Persist { peer, reason } => Row::Persist {
            peer: id(peer),
            reason: *reason,
        },
        Change::SetUserAddrs { peer, addrs: a } => Row::Addrs {
            peer: id(peer),
            kind: USER,
            addrs: addrs(a)?,
        },
        Change::SetAdvertisedAddrs { peer, addrs: a } => Row::Addrs {
            peer: id(peer),
            kind: ADVERTISED,
            addrs: addrs(a)?,
        },
        Change::SetLastConnection { peer, connection } => Row::LastConnection {
            peer: id(peer),
            addr: addr_text(&connection.addr)?,
            at: unix_nanos(connection.at, "connection time out of range")?,
            lasted: connection
                .lasted
                .map(|lasted| nanos(lasted, "connection length out of range"))
                .transpose()?,
        },
        Change::SetBackoff { peer, level } => Row::Backoff {
            peer: id(peer),
            level: nanos(*level, "backoff level out of range")?,
        },
        Change::Remove { peer } => Row::Remove { peer: id(peer) },
        Change::Ban(ban) => Row::Ban {
            peer: id(&ban.peer),
            until: unix_nanos(ban.until, "ban expiry out of range")?,
        },
        Change::Unban { peer } => Row::Unban { peer: id(peer) },
    })
}

impl Row {
    /// Writes the row inside `tx`.
    pub(crate) fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        match self {
            Row::Persist { peer, reason } => {
                tx.prepare_cached(
                    "INSERT INTO peer (id, user_asked, has_channels) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET
                         user_asked = excluded.user_asked, has_channels = excluded.has_channels",
                )?
                .execute(params![peer, reason.user_asked, reason.has_channels])?;
            }
            Row::Addrs { peer, kind, addrs } => {
                let known: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM peer WHERE id = ?1)")?
                    .query_row([peer], |row| row.get(0))?;
                if known {
                    tx.prepare_cached("DELETE FROM peer_addr WHERE peer = ?1 AND kind = ?2")?
                        .execute(params![peer, kind])?;
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO peer_addr (peer, kind, position, addr) VALUES (?1, ?2, ?3, ?4)",
                    )?;
                    for (position, addr) in (0_i64..).zip(addrs) {
                        insert.execute(params![peer, kind, position, addr])?;
                    }
                }
            }
            Row::LastConnection {
                peer,
                addr,
                at,
                lasted,
            } => {
                tx.prepare_cached(
                    "UPDATE peer SET last_addr = ?2, last_connected_at_unix_ns = ?3,
                         last_connected_for_ns = ?4
                     WHERE id = ?1",
                )?
                .execute(params![peer, addr, at, lasted])?;
            }
            Row::Backoff { peer, level } => {
                tx.prepare_cached("UPDATE peer SET backoff_ns = ?2 WHERE id = ?1")?
                    .execute(params![peer, level])?;
            }
            Row::Remove { peer } => {
                tx.prepare_cached("DELETE FROM peer_addr WHERE peer = ?1")?
                    .execute([peer])?;
                tx.prepare_cached("DELETE FROM peer WHERE id = ?1")?
                    .execute([peer])?;
            }
            Row::Ban { peer, until } => {
                tx.prepare_cached(
                    "INSERT INTO ban (peer, until_unix_ns) VALUES (?1, ?2)
                     ON CONFLICT (peer) DO UPDATE SET until_unix_ns = excluded.until_unix_ns",
                )?
                .execute(params![peer, until])?;
            }
            Row::Unban { peer } => {
                tx.prepare_cached("DELETE FROM ban WHERE peer = ?1")?
                    .execute([peer])?;
            }
        }
        Ok(())
    }
}

/// A peer's stored values, not yet parsed.
#[derive(Debug)]
pub(crate) struct RawPeer {
    id: String,
    reason: Reason,
    backoff: Option<i64>,
    last: Option<(String, i64, Option<i64>)>,
    user_addrs: Vec<String>,
    advertised_addrs: Vec<String>,
}

/// The whole store, not yet parsed.
#[derive(Debug)]
pub(crate) struct RawSnapshot {
    peers: Vec<RawPeer>,
    bans: Vec<(String, i64)>,
}

/// Reads every table in one read transaction (one consistent view).
pub(crate) fn read(conn: &mut Connection) -> Result<RawSnapshot, StoreError> {
    let tx = conn.transaction()?;
    let mut peers = Vec::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT id, user_asked, has_channels, backoff_ns,
                    last_addr, last_connected_at_unix_ns, last_connected_for_ns
             FROM peer ORDER BY id",
        )?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let last_addr: Option<String> = row.get(4)?;
            let last_at: Option<i64> = row.get(5)?;
            let last = match (last_addr, last_at) {
                (Some(addr), Some(at)) => Some((addr, at, row.get(6)?)),
                // The table's CHECK keeps both or neither.
                _ => None,
            };
            peers.push(RawPeer {
                id: row.get(0)?,
                reason: Reason {
                    user_asked: row.get(1)?,
                    has_channels: row.get(2)?,
                },
                backoff: row.get(3)?,
                last,
                user_addrs: Vec::new(),
                advertised_addrs: Vec::new(),
            });
        }
    }
    {
        let mut select = tx.prepare_cached(
            "SELECT peer, kind, addr FROM peer_addr ORDER BY peer, kind, position",
        )?;
        let mut rows = select.query([])?;
        // Both sorted by node id (BINARY collation: byte order, as `str`'s):
        // one walk attaches every address to its peer.
        let mut at = 0;
        while let Some(row) = rows.next()? {
            let peer: String = row.get(0)?;
            while at < peers.len() && peers[at].id < peer {
                at += 1;
            }
            let kind: String = row.get(1)?;
            let addr: String = row.get(2)?;
            let Some(record) = peers.get_mut(at).filter(|p| p.id == peer) else {
                return Err(StoreError::CorruptRecord {
                    table: "peer_addr",
                    detail: format!("address {addr:?} of peer {peer:?}, which has no record"),
                });
            };
            match kind.as_str() {
                USER => record.user_addrs.push(addr),
                // The table's CHECK allows no third kind.
                _ => record.advertised_addrs.push(addr),
            }
        }
    }
    let mut bans = Vec::new();
    {
        let mut select = tx.prepare_cached("SELECT peer, until_unix_ns FROM ban ORDER BY peer")?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            bans.push((row.get(0)?, row.get(1)?));
        }
    }
    tx.finish()?;
    Ok(RawSnapshot { peers, bans })
}

fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::CorruptRecord { table, detail }
}

fn node_id(table: &'static str, text: &str) -> Result<PublicKey, StoreError> {
    text.parse()
        .map_err(|_| corrupt(table, format!("{text:?} is not a node id")))
}

fn addr<A: FromStr>(table: &'static str, peer: &str, text: &str) -> Result<A, StoreError> {
    text.parse().map_err(|_| {
        corrupt(
            table,
            format!("address {text:?} of peer {peer} does not parse"),
        )
    })
}

fn duration(
    table: &'static str,
    peer: &str,
    what: &str,
    n: i64,
) -> Result<std::time::Duration, StoreError> {
    from_nanos(n).ok_or_else(|| corrupt(table, format!("{what} of peer {peer} is negative ({n})")))
}

fn time(
    table: &'static str,
    peer: &str,
    what: &str,
    n: i64,
) -> Result<std::time::SystemTime, StoreError> {
    from_unix_nanos(n).ok_or_else(|| {
        corrupt(
            table,
            format!("{what} of peer {peer} is out of range ({n})"),
        )
    })
}

/// Parses what [`read`] returned.
pub(crate) fn decode<A: FromStr>(raw: RawSnapshot) -> Result<Snapshot<A>, StoreError> {
    let mut peers = Vec::with_capacity(raw.peers.len());
    for p in raw.peers {
        let mut record = PeerRecord::new(node_id("peer", &p.id)?, p.reason);
        let addrs = |texts: &[String]| {
            texts
                .iter()
                .map(|t| addr("peer_addr", &p.id, t))
                .collect::<Result<Vec<A>, _>>()
        };
        record.user_addrs = addrs(&p.user_addrs)?;
        record.advertised_addrs = addrs(&p.advertised_addrs)?;
        record.backoff = p
            .backoff
            .map(|n| duration("peer", &p.id, "backoff_ns", n))
            .transpose()?;
        if let Some((text, at, lasted)) = &p.last {
            record.last_connection = Some(LastConnection {
                addr: addr("peer", &p.id, text)?,
                at: time("peer", &p.id, "last_connected_at_unix_ns", *at)?,
                lasted: lasted
                    .map(|n| duration("peer", &p.id, "last_connected_for_ns", n))
                    .transpose()?,
            });
        }
        peers.push(record);
    }
    let bans = raw
        .bans
        .iter()
        .map(|(peer, until)| {
            Ok(Ban {
                peer: node_id("ban", peer)?,
                until: time("ban", peer, "until_unix_ns", *until)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Snapshot::new(peers, bans))
}
