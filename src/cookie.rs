//! Reading the session cookie from a request and writing it on a response.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

/// Cookies longer than this are rejected unread, as browsers would.
pub(crate) const MAX_COOKIE_LEN: usize = 4096;

/// The default name of a `Secure` cookie on `Path=/` with no `Domain`: the `__Host-`
/// prefix makes browsers refuse it from plain HTTP, other paths or a sibling domain.
const HOST_NAME: &str = "__Host-id";
/// The default name of a `Secure` cookie with a `Path` or `Domain` (no `__Host-` then).
const SECURE_NAME: &str = "__Secure-id";
/// The default name without `Secure`, where browsers would reject either prefix.
const PLAIN_NAME: &str = "id";

/// A cookie name prefix that browsers enforce (RFC 6265bis 4.1.3), matched
/// case-insensitively as they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// `__Host-`: `Secure`, `Path=/`, no `Domain`.
    Host,
    /// `__Secure-`: `Secure`.
    Secure,
}

impl Prefix {
    pub(crate) fn of(name: &str) -> Option<Self> {
        let starts = |prefix: &str| {
            name.get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
        };
        if starts("__Host-") {
            Some(Self::Host)
        } else if starts("__Secure-") {
            Some(Self::Secure)
        } else {
            None
        }
    }
}

/// The session cookie's name and attributes.
#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    /// Set by the application; `None` takes the default of [`name`](Self::name).
    pub(crate) name: Option<String>,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    /// Persistent cookies carry `Max-Age`; others end with the browser session.
    pub(crate) persistent: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: None,
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            persistent: false,
        }
    }
}

impl CookieConfig {
    /// The cookie's name: the application's, or the strongest prefix the other
    /// attributes allow (`__Host-id`, `__Secure-id`, else `id`).
    pub(crate) fn name(&self) -> &str {
        match &self.name {
            Some(name) => name,
            None if !self.secure => PLAIN_NAME,
            None if self.path == "/" && self.domain.is_none() => HOST_NAME,
            None => SECURE_NAME,
        }
    }

    /// The one value of our cookie across all `Cookie` headers.
    ///
    /// A duplicated cookie is ambiguous (one may have been planted by a sibling domain),
    /// so it counts as absent, as does an oversized one. Works on bytes: a non-UTF-8
    /// header elsewhere cannot hide or corrupt ours.
    pub(crate) fn find<'h>(&self, headers: &'h HeaderMap) -> Option<&'h [u8]> {
        let name = self.name().as_bytes();
        let mut found = None;
        for header in headers.get_all(COOKIE) {
            for pair in pairs(header.as_bytes()) {
                let pair = pair.trim_ascii();
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if &pair[..eq] != name {
                    continue;
                }
                if found.is_some() || pair.len() > MAX_COOKIE_LEN {
                    return None;
                }
                found = Some(&pair[eq + 1..]);
            }
        }
        found
    }

    /// Appends `Set-Cookie` for `token`; `lifetime` is the `Max-Age` of persistent cookies.
    pub(crate) fn set(&self, headers: &mut HeaderMap, token: &str, lifetime: Duration) {
        append(headers, &self.with_lifetime(token, lifetime));
    }

    /// The cookie `set` sends: `Max-Age` = `lifetime` if persistent.
    pub(crate) fn with_lifetime<'c>(&'c self, token: &'c str, lifetime: Duration) -> Cookie<'c> {
        let mut cookie = self.build(token);
        if self.persistent {
            cookie.set_max_age(cookie::time::Duration::try_from(lifetime).ok());
        }
        cookie
    }

    /// Appends a `Set-Cookie` that deletes the cookie (same Path, Domain and Secure).
    pub(crate) fn remove(&self, headers: &mut HeaderMap) {
        let mut cookie = self.build("");
        cookie.make_removal();
        append(headers, &cookie);
    }

    /// Whether the attributes follow the name's prefix rules, which browsers enforce by
    /// dropping the cookie: checked when the layer is built.
    pub(crate) fn follows_prefix_rules(&self) -> bool {
        match Prefix::of(self.name()) {
            None => true,
            Some(Prefix::Secure) => self.secure,
            Some(Prefix::Host) => self.secure && self.path == "/" && self.domain.is_none(),
        }
    }

    fn build<'c>(&'c self, value: &'c str) -> Cookie<'c> {
        let mut cookie = Cookie::build((self.name(), value))
            .http_only(self.http_only)
            .same_site(self.same_site)
            .secure(self.secure)
            .path(self.path.as_str())
            .build();
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.as_str());
        }
        cookie
    }
}

/// The `;`-separated parts of a `Cookie` header, as `split` would give them.
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let current = rest?;
        Some(match semicolon(current) {
            Some(at) => {
                rest = Some(&current[at + 1..]);
                &current[..at]
            }
            None => {
                rest = None;
                current
            }
        })
    })
}

/// The position of the first `;`, looked for eight bytes at a time: a token-mode cookie
/// is hundreds of bytes long, and a byte-by-byte scan was most of what finding it cost.
fn semicolon(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const SEMICOLONS: u64 = u64::from_le_bytes([b';'; 8]);
    let mut skipped = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8 bytes")) ^ SEMICOLONS;
        // Nonzero exactly when some byte of `word` is zero, i.e. some byte was `;`.
        if word.wrapping_sub(ONES) & !word & HIGHS != 0 {
            break;
        }
        skipped += 8;
    }
    let within = bytes[skipped..].iter().position(|&b| b == b';')?;
    Some(skipped + within)
}

fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    let value = HeaderValue::try_from(cookie.to_string())
        .expect("cookie names, attributes and base64url tokens are valid header text");
    headers.append(SET_COOKIE, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    /// The plain `id` name, as with `Secure` off.
    fn plain() -> CookieConfig {
        CookieConfig {
            secure: false,
            ..CookieConfig::default()
        }
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let config = plain();
        assert_eq!(
            config.find(&headers(&[b"a=1; id=tok; b=2"])),
            Some(&b"tok"[..])
        );
        assert_eq!(
            config.find(&headers(&[b"a=1", b"id=tok"])),
            Some(&b"tok"[..])
        );
        assert_eq!(
            config.find(&headers(&[b"a=\xff\xfe; id=tok"])),
            Some(&b"tok"[..])
        );
        assert_eq!(config.find(&headers(&[b"xid=tok; idx=1"])), None);
    }

    #[test]
    fn pairs_split_as_split_does() {
        let cases: [&[u8]; 9] = [
            b"",
            b";",
            b"a=1",
            b"a=1;",
            b";;a=1;;b",
            b"0123456;89abcdef;",
            b"01234567;9abcdef0123456789;",
            b"0123456789abcdef0123456789abcdef",
            b"\xff;\xfe\xfd;;;; x=;;;;;;;;;;;;;;;;",
        ];
        for case in cases {
            let expected: Vec<&[u8]> = case.split(|&b| b == b';').collect();
            assert_eq!(pairs(case).collect::<Vec<_>>(), expected, "{case:?}");
        }
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = b';';
                assert_eq!(semicolon(&bytes), Some(at), "{len} {at}");
            }
            assert_eq!(semicolon(&vec![b':'; len]), None, "{len}");
        }
    }

    #[test]
    fn duplicates_and_oversized_count_as_absent() {
        let config = plain();
        assert_eq!(config.find(&headers(&[b"id=a; id=b"])), None);
        assert_eq!(config.find(&headers(&[b"id=a", b"id=a"])), None);
        let big = [b"id=".as_slice(), &[b'a'; MAX_COOKIE_LEN]].concat();
        assert_eq!(config.find(&headers(&[&big])), None);
    }

    #[test]
    fn secure_defaults_and_removal() {
        let config = CookieConfig::default();
        let mut map = HeaderMap::new();
        config.set(&mut map, "tok", Duration::from_secs(60));
        config.remove(&mut map);
        let set: Vec<_> = map
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            set[0],
            "__Host-id=tok; HttpOnly; SameSite=Lax; Secure; Path=/"
        );
        assert!(
            set[1].starts_with("__Host-id=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0"),
            "{}",
            set[1]
        );
    }

    #[test]
    fn persistent_cookies_have_max_age() {
        let config = CookieConfig {
            persistent: true,
            ..CookieConfig::default()
        };
        let mut map = HeaderMap::new();
        config.set(&mut map, "tok", Duration::from_secs(60));
        assert!(map[SET_COOKIE].to_str().unwrap().ends_with("Max-Age=60"));
    }

    #[test]
    fn default_name_follows_secure_path_and_domain() {
        assert_eq!(CookieConfig::default().name(), "__Host-id");
        assert_eq!(plain().name(), "id");
        let with_path = CookieConfig {
            path: "/app".into(),
            ..CookieConfig::default()
        };
        assert_eq!(with_path.name(), "__Secure-id");
        let with_domain = CookieConfig {
            domain: Some("example.com".into()),
            ..CookieConfig::default()
        };
        assert_eq!(with_domain.name(), "__Secure-id");
        for config in [CookieConfig::default(), plain(), with_path, with_domain] {
            assert!(config.follows_prefix_rules(), "{config:?}");
        }
    }

    #[test]
    fn prefixes_are_detected_case_insensitively() {
        for name in ["__Host-id", "__host-id", "__HOST-x", "__hOsT-"] {
            assert_eq!(Prefix::of(name), Some(Prefix::Host), "{name}");
        }
        for name in ["__Secure-id", "__secure-id", "__SECURE-x"] {
            assert_eq!(Prefix::of(name), Some(Prefix::Secure), "{name}");
        }
        for name in [
            "id",
            "_Host-id",
            "__Host",
            "__Hostid",
            "x__Host-id",
            "__Secur-id",
            "",
        ] {
            assert_eq!(Prefix::of(name), None, "{name}");
        }
    }

    #[test]
    fn prefix_rules() {
        let named = |name: &str| CookieConfig {
            name: Some(name.into()),
            ..CookieConfig::default()
        };
        assert!(named("__host-id").follows_prefix_rules());
        for broken in [
            CookieConfig {
                secure: false,
                ..named("__HOST-id")
            },
            CookieConfig {
                path: "/app".into(),
                ..named("__host-id")
            },
            CookieConfig {
                domain: Some("example.com".into()),
                ..named("__Host-id")
            },
            CookieConfig {
                secure: false,
                ..named("__secure-id")
            },
        ] {
            assert!(!broken.follows_prefix_rules(), "{broken:?}");
        }
        let secure_with_domain = CookieConfig {
            domain: Some("example.com".into()),
            path: "/app".into(),
            ..named("__Secure-id")
        };
        assert!(secure_with_domain.follows_prefix_rules());
    }
}
