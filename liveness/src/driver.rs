//! Driving a [`Liveness`] on tokio's clock (feature `tokio`).

use std::time::Instant;

use crate::{Action, Liveness};

/// Tokio's current time as a std [`Instant`]: under tokio's paused test
/// clock this is the paused time. Pass it as `now` to every call when
/// the machine is driven by [`next_action`].
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Waits (on tokio's timer) until `liveness` has something to do and
/// returns it; pending forever once the peer was reported dead.
///
/// Cancel-safe: the state changes only in [`Liveness::poll`], and a poll
/// that returns an action returns it from this future at once. Made to
/// sit in a `select!` beside the connection's reads, which feed the
/// machine with [`now`]:
///
/// ```
/// use std::time::Duration;
/// use liveness::{next_action, now, Action, Config, Liveness};
/// use tokio::sync::mpsc;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), liveness::Error> {
/// // Stands for the connection: what the peer sends (here: nothing).
/// let (_peer, mut inbox) = mpsc::channel::<Vec<u8>>(8);
/// let config = Config::new(Duration::from_secs(60), Duration::from_secs(30))?;
/// let mut link = Liveness::new(config, now());
/// let reason = loop {
///     tokio::select! {
///         action = next_action(&mut link) => match action {
///             Action::SendPing(ping) => { let _bytes = ping.encode(); /* write them */ }
///             Action::Disconnect(reason) => break reason,
///         },
///         Some(_msg) = inbox.recv() => link.on_message_received(now()),
///     }
/// };
/// assert_eq!(reason.to_string(), "no reply to a ping within 30s");
/// # Ok(())
/// # }
/// ```
pub async fn next_action(liveness: &mut Liveness) -> Action {
    loop {
        if let Some(action) = liveness.poll(now()) {
            return action;
        }
        match liveness.next_deadline() {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Error, Ping};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_dropped_on_the_paused_clock() {
        let config = Config::new(Duration::from_secs(60), Duration::from_secs(30)).expect("valid");
        let start = now();
        let mut l = Liveness::new(config, start);
        assert_eq!(next_action(&mut l).await, Action::SendPing(Ping::new(0, 0)));
        assert_eq!(now() - start, Duration::from_secs(60));
        assert_eq!(
            next_action(&mut l).await,
            Action::Disconnect(Error::PongTimeout {
                timeout: Duration::from_secs(30)
            })
        );
        assert_eq!(now() - start, Duration::from_secs(90));
        let never = tokio::time::timeout(Duration::from_secs(3600), next_action(&mut l)).await;
        assert!(never.is_err(), "nothing after the disconnect");
    }
}
