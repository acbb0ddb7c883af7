//! What the store holds: peer records, bans, and the changes that edit them.

use std::time::{Duration, SystemTime};

use bitcoin::secp256k1::PublicKey;

/// Why a peer is persistent. Both can be true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reason {
    /// A user asked for the peer (`connect --perm`).
    pub user_asked: bool,
    /// The node has channels with the peer.
    pub has_channels: bool,
}

/// The last connection to a peer that got established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastConnection<A> {
    /// The address that worked (for an inbound connection, whichever address
    /// the server chose to record; never the ephemeral source port).
    pub addr: A,
    /// When the connection was established (wall clock).
    pub at: SystemTime,
    /// How long it lasted; `None` while it was live when last written (after
    /// a crash it stays `None`: the end was never recorded).
    pub lasted: Option<Duration>,
}

/// Everything the store knows about one persistent peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerRecord<A> {
    /// The peer's node id.
    pub id: PublicKey,
    /// Why it is persistent.
    pub reason: Reason,
    /// Addresses a user gave, in the order given.
    pub user_addrs: Vec<A>,
    /// Addresses the peer advertised (BOLT 7 `node_announcement`), in order.
    pub advertised_addrs: Vec<A>,
    /// The last connection that got established, if any.
    pub last_connection: Option<LastConnection<A>>,
    /// The backoff level the peer's worker had reached, if one was written.
    pub backoff: Option<Duration>,
}

impl<A> PeerRecord<A> {
    /// A record with no addresses, no connection and no backoff level: what
    /// [`Change::Persist`] creates for a peer the store did not hold.
    pub fn new(id: PublicKey, reason: Reason) -> Self {
        Self {
            id,
            reason,
            user_addrs: Vec::new(),
            advertised_addrs: Vec::new(),
            last_connection: None,
            backoff: None,
        }
    }
}

/// A banned peer and when its ban ends (wall clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The banned node id.
    pub peer: PublicKey,
    /// When the ban expires.
    pub until: SystemTime,
}

/// Everything a store holds, as [`PeerStore::load`](crate::PeerStore::load)
/// returns it at startup.
///
/// The stores of this crate return peers and bans ordered by node id (the
/// byte order of the compressed key). Bans are returned whatever their
/// expiry: a store has no clock; [`Snapshot::bans_active_at`] filters them,
/// and the server removes expired ones with [`Change::Unban`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot<A> {
    /// Every stored persistent peer.
    pub peers: Vec<PeerRecord<A>>,
    /// Every stored ban.
    pub bans: Vec<Ban>,
}

impl<A> Snapshot<A> {
    /// A snapshot of these peers and bans (for a [`PeerStore`](crate::PeerStore)
    /// implemented outside this crate).
    pub fn new(peers: Vec<PeerRecord<A>>, bans: Vec<Ban>) -> Self {
        Self { peers, bans }
    }

    /// The bans still in force at `now` (those that expire after it).
    pub fn bans_active_at(&self, now: SystemTime) -> impl Iterator<Item = &Ban> + '_ {
        self.bans.iter().filter(move |ban| ban.until > now)
    }
}

impl<A> Default for Snapshot<A> {
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

/// One edit of the store. [`PeerStore::apply`](crate::PeerStore::apply)
/// takes a list of them and applies it in order, all or none.
///
/// The variants that edit a peer's record (`SetUserAddrs`,
/// `SetAdvertisedAddrs`, `SetLastConnection`, `SetBackoff`) do nothing when
/// the store holds no record for that peer: only [`Change::Persist`] creates
/// one, so a late fact about a peer that was just removed cannot bring it
/// back. Bans are kept apart from peer records: banning does not remove a
/// record, and removing a record does not lift a ban.
///
/// Not `#[non_exhaustive]` on purpose: a new variant must break the build of
/// a store implemented elsewhere rather than fall into a wildcard arm that
/// ignores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<A> {
    /// The peer is persistent, for `reason`: creates its record, or sets the
    /// reason of the stored one (its other fields are kept). The store
    /// records the reason as given; not downgrading it is the server's rule.
    Persist {
        /// The peer.
        peer: PublicKey,
        /// Why it is persistent.
        reason: Reason,
    },
    /// Replaces the addresses a user gave for the peer.
    SetUserAddrs {
        /// The peer.
        peer: PublicKey,
        /// The addresses, in order (may be empty).
        addrs: Vec<A>,
    },
    /// Replaces the addresses the peer advertised.
    SetAdvertisedAddrs {
        /// The peer.
        peer: PublicKey,
        /// The addresses, in order (may be empty).
        addrs: Vec<A>,
    },
    /// Records the peer's last established connection.
    SetLastConnection {
        /// The peer.
        peer: PublicKey,
        /// The connection.
        connection: LastConnection<A>,
    },
    /// Records the peer's backoff level.
    SetBackoff {
        /// The peer.
        peer: PublicKey,
        /// The level its worker had reached.
        level: Duration,
    },
    /// Removes the peer's record (forget, disconnect): it is no longer
    /// persistent. Does nothing if there is none.
    Remove {
        /// The peer.
        peer: PublicKey,
    },
    /// Bans the peer until a time, replacing any ban it had.
    Ban(Ban),
    /// Lifts the peer's ban. Does nothing if there is none.
    Unban {
        /// The peer.
        peer: PublicKey,
    },
}
