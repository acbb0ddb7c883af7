//! [`LdkPeerHandler`]: the server's view of a connection LDK runs.

use bitcoin::secp256k1::PublicKey;
use server::{Direction, DisconnectReason, PeerHandler};
use tokio_util::sync::CancellationToken;

use crate::LdkConnection;

/// The [`PeerHandler`] for [`LdkConnection`]s: LDK runs the protocol; this
/// waits for LDK's connection to end and tells the server, which
/// reconnects a persistent peer with the backoff for how long it lasted.
///
/// On cancellation (the server's `disconnect`, a ban, a duplicate that
/// lost, shutdown) it closes exactly this connection and waits until LDK
/// has let go of it, so a redial is not refused by LDK as a duplicate of
/// the old one.
#[derive(Debug, Clone, Copy, Default)]
pub struct LdkPeerHandler;

impl PeerHandler<LdkConnection> for LdkPeerHandler {
    async fn run(
        &self,
        _peer: PublicKey,
        mut conn: LdkConnection,
        _direction: Direction,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        tokio::select! {
            () = conn.closed() => DisconnectReason::Remote("ldk closed the connection".into()),
            () = cancel.cancelled() => {
                conn.close();
                conn.closed().await;
                DisconnectReason::Cancelled
            }
        }
    }
}
