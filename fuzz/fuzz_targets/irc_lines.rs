//! The IRC door's line reader and parser on arbitrary bytes in arbitrary pieces: never a
//! panic, never a line past the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u16, &[u8])| {
    let (piece, max, data) = input;
    let max = usize::from(max % 1024).max(1);
    ferry::server::irc_fuzz::lines(data, max, usize::from(piece).max(1));
});
