//! Signing in from an IRC client: SASL PLAIN (RFC 4616, as IRCv3's `sasl` carries it) or
//! `PASS NAME:SECRET`. IRC clients cannot answer ferry's challenge, so the secret itself
//! crosses the wire — inside TLS, the door's default — and is checked against the stored
//! credential with the same failure limits and delay as the proof.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What a PLAIN payload or a PASS names: a user and the secret to check.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Claim {
    pub(super) user: String,
    pub(super) secret: String,
}

/// The most bytes of a SASL payload this door takes (a name and a token are far less).
pub(super) const MAX_SASL_BYTES: usize = 4096;

/// `authzid \0 authcid \0 password`, base64: the user is `authcid` (or `authzid` when that is
/// empty); the password is the token's secret or the whole `NAME:SECRET` token.
pub(super) fn plain(payload: &str) -> Option<Claim> {
    let bytes = STANDARD.decode(payload).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut fields = text.split('\0');
    let (authzid, authcid, password) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let user = if authcid.is_empty() { authzid } else { authcid };
    if !authzid.is_empty() && authzid != user {
        // Acting as another user is not a thing ferry has.
        return None;
    }
    let secret = password
        .strip_prefix(user)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(password);
    (!user.is_empty()).then(|| Claim {
        user: user.to_string(),
        secret: secret.to_string(),
    })
}

/// `PASS NAME:SECRET`: the token, split at its last `:`.
pub(super) fn pass(token: &str) -> Option<Claim> {
    let (user, secret) = token.rsplit_once(':')?;
    (!user.is_empty() && !secret.is_empty()).then(|| Claim {
        user: user.to_string(),
        secret: secret.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    #[test]
    fn plain_takes_the_secret_or_the_whole_token() {
        let want = Some(Claim {
            user: "alice".into(),
            secret: "s3cret".into(),
        });
        assert_eq!(plain(&b64("\0alice\0s3cret")), want);
        assert_eq!(plain(&b64("alice\0alice\0alice:s3cret")), want);
        assert_eq!(plain(&b64("alice\0\0s3cret")), want);
        assert_eq!(
            plain(&b64("bob\0alice\0s3cret")),
            None,
            "no acting as another"
        );
        assert_eq!(plain(&b64("\0\0s3cret")), None);
        assert_eq!(plain("not base64!"), None);
    }

    #[test]
    fn pass_is_a_token() {
        assert_eq!(
            pass("alice:s3cret"),
            Some(Claim {
                user: "alice".into(),
                secret: "s3cret".into()
            })
        );
        assert_eq!(pass("no-colon"), None);
        assert_eq!(pass("alice:"), None);
    }
}
