//! The preamble and the other strings a peer or a config controls: tokens, user names,
//! credentials, permission lists, nicks and room names. None may panic.
#![no_main]

use ferry::auth::scram::Credential;
use ferry::auth::token::Token;
use ferry::protocol::{Permissions, Preamble};
use ferry::services::chat::names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = <&[u8; 8]>::try_from(data.get(..8).unwrap_or_default()) {
        let _ = Preamble::decode(bytes);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = text.parse::<Token>() {
        assert_eq!(token.to_string().parse::<Token>().unwrap(), token);
    }
    if let Ok(credential) = Credential::from_config_string(text) {
        assert_eq!(
            Credential::from_config_string(&credential.to_config_string()).unwrap(),
            credential
        );
    }
    let _ = Permissions::parse_list(text);
    let _ = names::validate("nick", text, 32);
    let nick = names::default_nick(Some(text), 32);
    assert!(names::validate("nick", &nick, 32).is_ok(), "{nick:?}");
});
