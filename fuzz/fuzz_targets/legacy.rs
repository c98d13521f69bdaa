//! The legacy protocols' responders on arbitrary chunks: never panic, and keep their contracts.
#![no_main]

use ferry::config::BotConfig;
use ferry::legacy::{chatbot, ftp, shell, upper};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let upper = upper::respond(data);
    assert_eq!(upper.len(), data.len());
    let config = BotConfig::default();
    if let Some(reply) = chatbot::respond(&config, data) {
        assert!(reply.ends_with("好".as_bytes()));
    }
    if let ftp::Request::Get(name) = ftp::parse(data) {
        assert!(!name.is_empty() && !name.contains(char::is_whitespace));
    }
    let (size, body) = shell::frame_output(data);
    assert_eq!(String::from_utf8(size).unwrap(), body.len().to_string());
});
