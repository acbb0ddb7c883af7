//! The handshake benches' fixture checks, run by `cargo test`: the BOLT 8
//! handshake written out without snow (the `reference` the brontide bench
//! measures ours against) makes our acts byte for byte and our session's
//! frames, and every workload runs.

#[path = "../benches/support/handshake.rs"]
mod handshake;

use handshake::{Fixture, Workload};

#[test]
fn the_reference_handshake_is_ours_byte_for_byte_and_every_workload_runs() {
    // `Fixture::new` asserts the acts, the split keys and 501 frames.
    let fixture = Fixture::new();
    for name in [
        "both",
        "responder",
        "floor",
        "responder_floor",
        "reference",
        "reference_responder",
    ] {
        let workload = Workload::parse(name).expect("a workload");
        fixture.run(workload);
    }
}
