//! Bearer tokens (`HTTP_AUTH_TOKENS`): when any is set, the order and reject routes, `/metrics`
//! and every unknown path answer 401, whatever the method, unless the request carries
//! `Authorization: Bearer <one of them>`. The probes and the search page's own files stay
//! open: orchestrators probe without secrets, and the page asks for the token itself.
//!
//! Only SHA-256 digests of the tokens are kept, and a presented token is compared with each
//! digest in constant time, so neither a token's content nor its length leaks through timing.

use actix_web::http::header::HeaderValue;
use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

use super::error::HttpError;

/// The accepted tokens, as digests; none means the API is open.
#[derive(Clone, Default)]
pub struct HttpAuth {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpAuth({} tokens)", self.digests.len())
    }
}

/// What a token may hold: RFC 6750's `b64token` characters.
fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/=".contains(&byte)
}

/// The shortest token accepted: a short one can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

impl HttpAuth {
    /// Accepts `tokens`; an error names the position of a token that is too short or holds
    /// a character a bearer token cannot (never the token itself).
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<HttpAuth, String> {
        let mut digests = Vec::new();
        for (position, token) in tokens.into_iter().enumerate() {
            if token.len() < MIN_TOKEN_LEN || !token.bytes().all(is_token_char) {
                return Err(format!(
                    "token {} is not at least {MIN_TOKEN_LEN} characters of A-Z a-z 0-9 -._~+/=",
                    position + 1
                ));
            }
            digests.push(sha256(token.as_bytes()));
        }
        Ok(HttpAuth { digests })
    }

    /// Whether tokens are required.
    pub fn is_on(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether an `Authorization` header carries an accepted token.
    pub fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = authorization.and_then(|value| bearer_token(value.as_bytes())) else {
            return false;
        };
        let presented = sha256(token);
        // Every digest is compared, so the time does not tell which one matched.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, accepted| {
                found | accepted.ct_eq(&presented)
            })
            .into()
    }
}

/// The token of `Bearer <token>` (the scheme in any case, as RFC 7235 says).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Why a request that needs a token is refused: it sent no `Authorization` header, or one
/// without an accepted token. [`HttpError`] answers 401 with the challenge and says what to send.
pub(super) fn refusal(had_header: bool) -> HttpError {
    if had_header {
        HttpError::TokenNotAccepted
    } else {
        HttpError::MissingToken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-long-enough-token-0001";

    #[test]
    fn only_an_accepted_bearer_token_passes() {
        let auth = HttpAuth::new([TOKEN, "another-token-of-16+"]).unwrap_or_else(|e| panic!("{e}"));
        let header = |value: &str| HeaderValue::from_str(value).ok();
        assert!(auth.allows(header(&format!("Bearer {TOKEN}")).as_ref()));
        assert!(auth.allows(header(&format!("bearer {TOKEN}")).as_ref()));
        assert!(auth.allows(header("Bearer another-token-of-16+").as_ref()));
        assert!(!auth.allows(None));
        assert!(!auth.allows(header(&format!("Basic {TOKEN}")).as_ref()));
        assert!(!auth.allows(header(&format!("Bearer {TOKEN}x")).as_ref()));
        assert!(!auth.allows(header("Bearer ").as_ref()));
        assert!(!format!("{auth:?}").contains(TOKEN));
    }

    #[test]
    fn weak_tokens_are_refused_without_being_shown() {
        let error = HttpAuth::new([TOKEN, "short"]).err().unwrap_or_default();
        assert!(error.starts_with("token 2 "), "{error}");
        assert!(!error.contains("short"), "{error}");
        assert!(HttpAuth::new([&format!("{TOKEN} space") as &str]).is_err());
        assert!(!HttpAuth::default().is_on());
    }
}
