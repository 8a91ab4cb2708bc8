//! Reading the session cookie from a request and writing it on a response.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

/// Cookies longer than this are rejected unread, as browsers would.
pub(crate) const MAX_COOKIE_LEN: usize = 4096;

/// The session cookie's name and attributes.
#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
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
            name: "id".to_owned(),
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
    /// The one value of our cookie across all `Cookie` headers.
    ///
    /// A duplicated cookie is ambiguous (one may have been planted by a sibling domain),
    /// so it counts as absent, as does an oversized one. Works on bytes: a non-UTF-8
    /// header elsewhere cannot hide or corrupt ours.
    pub(crate) fn find<'h>(&self, headers: &'h HeaderMap) -> Option<&'h [u8]> {
        let name = self.name.as_bytes();
        let mut found = None;
        for header in headers.get_all(COOKIE) {
            for pair in header.as_bytes().split(|&b| b == b';') {
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
        let mut cookie = self.build(token);
        if self.persistent {
            cookie.set_max_age(cookie::time::Duration::try_from(lifetime).ok());
        }
        append(headers, &cookie);
    }

    /// Appends a `Set-Cookie` that deletes the cookie (same Path, Domain and Secure).
    pub(crate) fn remove(&self, headers: &mut HeaderMap) {
        let mut cookie = self.build("");
        cookie.make_removal();
        append(headers, &cookie);
    }

    fn build<'c>(&'c self, value: &'c str) -> Cookie<'c> {
        let host_prefixed = self.name.starts_with("__Host-");
        let mut cookie = Cookie::build((self.name.as_str(), value))
            .http_only(self.http_only)
            .same_site(self.same_site)
            // The __Host- and __Secure- prefixes are only honoured by browsers with Secure.
            .secure(self.secure || host_prefixed || self.name.starts_with("__Secure-"))
            .path(if host_prefixed {
                "/"
            } else {
                self.path.as_str()
            })
            .build();
        if let (Some(domain), false) = (&self.domain, host_prefixed) {
            cookie.set_domain(domain.as_str());
        }
        cookie
    }
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

    #[test]
    fn finds_the_cookie_among_others() {
        let config = CookieConfig::default();
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
    fn duplicates_and_oversized_count_as_absent() {
        let config = CookieConfig::default();
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
        assert_eq!(set[0], "id=tok; HttpOnly; SameSite=Lax; Secure; Path=/");
        assert!(
            set[1].starts_with("id=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0"),
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
    fn host_prefix_forces_its_rules() {
        let config = CookieConfig {
            name: "__Host-id".into(),
            secure: false,
            path: "/app".into(),
            domain: Some("example.com".into()),
            ..CookieConfig::default()
        };
        let mut map = HeaderMap::new();
        config.set(&mut map, "tok", Duration::from_secs(60));
        assert_eq!(
            map[SET_COOKIE],
            "__Host-id=tok; HttpOnly; SameSite=Lax; Secure; Path=/"
        );
    }
}
