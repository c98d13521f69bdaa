//! Lowercase hex, the one text form of every digest and fingerprint on the wire (and of the
//! random suffixes ferry puts in names).

use std::fmt::Write;

/// `bytes` as lowercase hex, two digits each.
pub fn encode(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_become_two_lowercase_digits_each() {
        assert_eq!(super::encode(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(super::encode(&[]), "");
    }
}
