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
    let len = data.len() as u64;
    let size = String::from_utf8(shell::size_header(len)).unwrap();
    let expected = if len == 0 { shell::NO_OUTPUT.len() as u64 } else { len };
    assert_eq!(size, expected.to_string());
});
