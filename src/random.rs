//! Random bytes from the operating system, for nonces, salts, tokens and unique names — one
//! home for what authentication, transfers, containment and the bench all need.

use ring::rand::{SecureRandom, SystemRandom};

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random source is available");
    out
}
