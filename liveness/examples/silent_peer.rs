//! A peer that answers two pings and then goes silent, on a simulated
//! clock: the printout shows the pings, the pongs and the disconnect with
//! its reason, within interval + timeout of the last byte.
//!
//! `cargo run -p liveness --example silent_peer`

use std::time::{Duration, Instant};

use liveness::{Action, Config, Liveness, Ping, Pong};

fn main() -> Result<(), liveness::Error> {
    let config = Config::new(Duration::from_secs(60), Duration::from_secs(30))?;
    let bound = config.detection_bound();
    let start = Instant::now();
    let mut ours = Liveness::new(config.clone(), start);
    let mut theirs = Liveness::new(config, start);
    let mut answers = 2;
    let mut last_byte = start;
    while let Some(at) = ours.next_deadline() {
        let t = at - start;
        match ours.poll(at) {
            Some(Action::SendPing(ping)) => {
                println!("{t:>7.2?}: ping asking for {} bytes", ping.num_pong_bytes());
                if answers > 0 {
                    answers -= 1;
                    // The peer reads the ping and answers 40 ms later.
                    let reply = at + Duration::from_millis(40);
                    let ping = Ping::decode(&ping.encode())?;
                    if let Some(pong) = theirs.on_ping(reply, &ping) {
                        let pong = Pong::decode(&pong.encode())?;
                        println!("{:>7.2?}: pong of {} bytes", reply - start, pong.len());
                        ours.on_pong(reply, pong.len());
                        last_byte = reply;
                    }
                }
            }
            Some(Action::Disconnect(reason)) => {
                println!("{t:>7.2?}: disconnect: {reason}");
                assert!(at - last_byte <= bound);
            }
            None => {}
        }
    }
    Ok(())
}
