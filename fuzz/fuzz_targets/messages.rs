//! Control-message parsing from arbitrary bytes: never panics; a parsed message serializes
//! and parses back to itself.
#![no_main]

use ferry::protocol::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::parse(data) {
        let again = Message::parse(&message.to_json()).expect("our own output parses");
        assert_eq!(again, message);
    }
});
