#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lnconn_fuzz::bolt1::parse_message(data);
});
