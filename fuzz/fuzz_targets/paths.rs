//! Client path checking: never panics, and an accepted path has only plain names, so joining
//! them onto the root can never climb out of it textually.
#![no_main]

use ferry::protocol::path::components;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(names) = components(path) {
        for name in names {
            assert!(!name.is_empty() && name != "." && name != "..");
            assert!(!name.contains('/') && !name.contains('\0'));
        }
        assert!(!path.starts_with('/'));
    }
});
