//! Where the token travels: a cookie (browsers) or a header (gRPC and other clients
//! that do not keep cookies).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::cookie::{CookieConfig, MAX_COOKIE_LEN};
use crate::keys::TOKEN_LEN;

/// A token as found in the request, not yet verified. Anything not exactly token-sized
/// is rejected when found, so holding it needs no allocation.
pub(crate) type RawToken = [u8; TOKEN_LEN];

/// What the request carried where the token travels.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing: an anonymous request.
    Absent,
    /// Something that cannot be a token (wrong size, duplicated): anonymous too.
    Malformed,
    /// A token-sized value, still to be verified.
    Token(RawToken),
    /// Token mode: a sealed session (at most 4096 bytes with its name), still to be opened.
    /// Only a token-mode carrier (`sealed`) finds one.
    Sealed(Box<[u8]>),
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Absent => "Absent",
            Self::Malformed => "Malformed",
            Self::Token(_) => "Token(<redacted>)",
            Self::Sealed(_) => "Sealed(<redacted>)",
        })
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Carrier {
    pub(crate) cookie: CookieConfig,
    /// When set, the token travels in this header instead of a cookie.
    pub(crate) header: Option<HeaderName>,
    /// Token mode: the value is a sealed session of any length up to the cookie limit.
    pub(crate) sealed: bool,
}

impl Carrier {
    /// The name the token's tag is bound to, so a token cannot move between carriers.
    pub(crate) fn name(&self) -> &str {
        self.header
            .as_ref()
            .map_or(self.cookie.name(), HeaderName::as_str)
    }

    /// The request's token, if there is exactly one of the right size.
    pub(crate) fn find(&self, headers: &HeaderMap) -> Found {
        let found = match &self.header {
            None => self.cookie.find(headers),
            Some(name) => {
                let mut values = headers.get_all(name).iter();
                let Some(value) = values.next() else {
                    return Found::Absent;
                };
                if values.next().is_some() || value.len() > MAX_COOKIE_LEN {
                    return Found::Malformed;
                }
                Some(value.as_bytes())
            }
        };
        if self.sealed {
            return match found {
                None => Found::Absent,
                Some(value) => Found::Sealed(value.into()),
            };
        }
        match found.map(RawToken::try_from) {
            None => Found::Absent,
            Some(Ok(token)) => Found::Token(token),
            Some(Err(_)) => Found::Malformed,
        }
    }

    /// Hands the client a new token.
    pub(crate) fn set(&self, headers: &mut HeaderMap, token: &str, lifetime: Duration) {
        match &self.header {
            None => self.cookie.set(headers, token, lifetime),
            Some(name) => {
                let value = HeaderValue::try_from(token).expect("tokens are base64url (and '.')");
                headers.insert(name.clone(), value);
            }
        }
    }

    /// Tells the client to drop its token: a removal cookie, or an empty header.
    pub(crate) fn remove(&self, headers: &mut HeaderMap) {
        match &self.header {
            None => self.cookie.remove(headers),
            Some(name) => {
                headers.insert(name.clone(), HeaderValue::from_static(""));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_carrier() -> Carrier {
        Carrier {
            header: Some(HeaderName::from_static("x-session")),
            ..Carrier::default()
        }
    }

    #[test]
    fn header_tokens_must_be_single_and_token_sized() {
        let carrier = header_carrier();
        let token = "a".repeat(TOKEN_LEN);
        let mut headers = HeaderMap::new();
        assert_eq!(carrier.find(&headers), Found::Absent);
        headers.insert("x-session", token.parse().unwrap());
        assert_eq!(
            carrier.find(&headers),
            Found::Token(RawToken::try_from(token.as_bytes()).unwrap())
        );
        headers.append("x-session", token.parse().unwrap());
        assert_eq!(carrier.find(&headers), Found::Malformed, "duplicated");
        headers.insert("x-session", "short".parse().unwrap());
        assert_eq!(carrier.find(&headers), Found::Malformed);
        assert_eq!(carrier.name(), "x-session");
    }

    #[test]
    fn header_set_and_remove() {
        let carrier = header_carrier();
        let mut headers = HeaderMap::new();
        carrier.set(&mut headers, "tok", Duration::ZERO);
        assert_eq!(headers["x-session"], "tok");
        carrier.remove(&mut headers);
        assert_eq!(headers["x-session"], "");
    }
}
