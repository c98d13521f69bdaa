//! Tokens: what `ferry user add` prints and what a client presents with `--token`.
//!
//! A token is `NAME:SECRET`, where SECRET is 32 random bytes in URL-safe base64. The name tells
//! the server which credential to check; the secret never crosses the wire (see `scram`).

use std::fmt;
use std::str::FromStr;

use crate::random::random_bytes;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest user name accepted, in characters.
pub const MAX_USER_NAME: usize = 32;

/// A token as the client holds it. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    user: String,
    secret: String,
}

/// Why a string is not a token or a user name.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token has the form NAME:SECRET, as printed by 'ferry user add'")]
    Malformed,
    #[error(
        "invalid user name '{0}': use 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    BadUserName(String),
}

/// Checks a user name: 1–32 of `[A-Za-z0-9._-]`, not starting with punctuation.
///
/// # Errors
/// [`TokenError::BadUserName`].
pub fn validate_user_name(name: &str) -> Result<(), TokenError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USER_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadUserName(name.chars().take(40).collect()))
    }
}

impl Token {
    /// A fresh random token for `user`.
    ///
    /// # Errors
    /// An invalid user name.
    pub fn generate(user: &str) -> Result<Token, TokenError> {
        validate_user_name(user)?;
        Ok(Token {
            user: user.to_string(),
            secret: URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
        })
    }

    /// The user this token logs in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The secret part, which only key derivation may see.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl FromStr for Token {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (user, secret) = s.trim().rsplit_once(':').ok_or(TokenError::Malformed)?;
        validate_user_name(user)?;
        if secret.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(Token {
            user: user.to_string(),
            secret: secret.to_string(),
        })
    }
}

impl fmt::Display for Token {
    /// The full token, for printing once by `ferry user add`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.user, self.secret)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}:MASKED)", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_hide_their_secret() {
        let t = Token::generate("alice").unwrap();
        let parsed: Token = t.to_string().parse().unwrap();
        assert_eq!(parsed, t);
        assert_eq!(parsed.user(), "alice");
        assert!(!format!("{t:?}").contains(t.secret()));
        assert_ne!(Token::generate("alice").unwrap(), t, "tokens are random");
    }

    #[test]
    fn refuses_malformed_tokens_and_names() {
        assert_eq!("nocolon".parse::<Token>(), Err(TokenError::Malformed));
        assert_eq!("alice:".parse::<Token>(), Err(TokenError::Malformed));
        assert!(matches!(
            "../x:abc".parse::<Token>(),
            Err(TokenError::BadUserName(_))
        ));
        assert!(validate_user_name(&"a".repeat(33)).is_err());
        assert!(validate_user_name("bob.smith-2").is_ok());
        assert!(validate_user_name("-bob").is_err());
    }
}
