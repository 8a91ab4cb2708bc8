//! The shop's settings, checked: what the command line (or its variables) asked for.

use tower_stateless::{Key, Keys};

use crate::digests::UserDigests;
use crate::sealing::UploadSeal;

use crate::cli::{ServeArgs, SessionMode};

/// Where sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// In this process: for one development instance only.
    Memory,
    /// One Redis server (`REDIS_URL`).
    Redis(String),
    /// A Redis Cluster (`REDIS_CLUSTER_NODES`, comma-separated `host:port`).
    Cluster(Vec<String>),
    /// The master that Redis Sentinel names (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`).
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// PostgreSQL (`DATABASE_URL`).
    Postgres(String),
}

/// The shop's settings.
#[derive(Debug)]
pub struct Config {
    /// The listening address: an IP address or a host name, resolved when binding.
    pub host: String,
    pub port: u16,
    pub instance: String,
    pub keys: Keys,
    /// True when `SESSION_KEYS` was unset and a random key is used.
    pub keys_generated: bool,
    pub store: StoreChoice,
    pub secure_cookies: bool,
    /// The limit on each user's live sessions, if any.
    pub max_sessions_per_user: Option<usize>,
    /// Session data encrypted at rest (`SESSION_ENCRYPT`).
    pub encrypt_sessions: bool,
    /// With `SESSION_ENCRYPT`: upload bytes sealed at rest too, under keys derived from
    /// `SESSION_KEYS`.
    pub uploads_seal: Option<UploadSeal>,
    /// Keyed names for what is kept per user (upload sets), derived from `SESSION_KEYS`.
    pub user_digests: UserDigests,
    /// Sessions the coherent cache holds on Redis (`SESSION_CACHE`); 0: no cache.
    pub session_cache: usize,
    /// Sessions in the store, or sealed in the cookie (`SESSION_MODE`).
    pub session_mode: SessionMode,
    /// The bucket uploads go to (`UPLOADS_BUCKET`), if any.
    pub uploads_bucket: Option<String>,
    /// How long an upload to the bucket may stay unfinished (`UPLOADS_EXPIRY`).
    pub uploads_expiry: std::time::Duration,
}

impl Config {
    /// Checks what clap parsed. An empty value counts as unset, as it did when the
    /// settings were read from the environment alone. The error never repeats a key.
    pub fn from_args(args: ServeArgs) -> Result<Self, String> {
        let set = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
        let instance =
            set(args.instance).unwrap_or_else(|| format!("{}:{}", hostname(), args.port));
        // It travels in every response's `x-instance` header.
        if instance.bytes().any(|byte| !(0x20..0x7f).contains(&byte)) {
            return Err(format!(
                "INSTANCE={instance:?}: use printable ASCII (it is sent in a header)"
            ));
        }
        let host = args.host.trim().to_owned();
        if host.is_empty() {
            return Err("HOST is empty: give an address such as 127.0.0.1 or ::".to_owned());
        }
        let (keys, raw_keys, keys_generated) = match set(args.session_keys) {
            Some(list) => (
                Keys::from_base64_list(&list).map_err(|error| format!("SESSION_KEYS: {error}"))?,
                raw_keys(&list),
                false,
            ),
            None => {
                let mut bytes = [0u8; 64];
                getrandom::fill(&mut bytes)
                    .map_err(|error| format!("cannot generate a session key: {error}"))?;
                let key = Key::from_bytes(&bytes).map_err(|error| error.to_string())?;
                (Keys::new(key), vec![bytes.to_vec()], true)
            }
        };
        let list = |nodes: String| -> Vec<String> {
            nodes
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let sentinel = match (set(args.redis_sentinels), set(args.redis_sentinel_master)) {
            (Some(sentinels), Some(master)) => Some(StoreChoice::Sentinel {
                sentinels: list(sentinels),
                master,
            }),
            (None, None) => None,
            _ => return Err("REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together".to_owned()),
        };
        let store = match (set(args.redis_cluster_nodes), sentinel, set(args.redis_url)) {
            (Some(nodes), _, _) => StoreChoice::Cluster(list(nodes)),
            (None, Some(sentinel), _) => sentinel,
            (None, None, Some(url)) => StoreChoice::Redis(url),
            (None, None, None) => StoreChoice::Memory,
        };
        let store = match set(args.database_url) {
            Some(_) if args.session_mode == SessionMode::Token => {
                return Err("DATABASE_URL is for store mode: token mode keeps its \
                            revocations in Redis (REDIS_URL)"
                    .to_owned());
            }
            Some(url) => StoreChoice::Postgres(url),
            None => store,
        };
        if args.session_mode == SessionMode::Token {
            if args.session_encrypt {
                return Err(
                    "SESSION_ENCRYPT is for store mode: token mode always seals \
                            the whole session"
                        .to_owned(),
                );
            }
            if args.max_sessions_per_user.is_some() {
                return Err(
                    "MAX_SESSIONS_PER_USER needs store mode: token mode lists no \
                            user's sessions"
                        .to_owned(),
                );
            }
        }
        Ok(Self {
            host,
            port: args.port,
            instance,
            keys,
            keys_generated,
            store,
            secure_cookies: args.cookie_secure,
            max_sessions_per_user: args.max_sessions_per_user,
            encrypt_sessions: args.session_encrypt,
            uploads_seal: args
                .session_encrypt
                .then(|| UploadSeal::from_key_bytes(&raw_keys))
                .flatten(),
            user_digests: UserDigests::from_key_bytes(&raw_keys)
                .ok_or("SESSION_KEYS: no key in the list")?,
            session_cache: args.session_cache,
            session_mode: args.session_mode,
            uploads_bucket: set(args.uploads_bucket),
            uploads_expiry: std::time::Duration::from_secs(args.uploads_expiry),
        })
    }
}

/// The bytes of each key of a `SESSION_KEYS` list that `Keys::from_base64_list` took,
/// the signing key first, decoded as it decodes them (standard or URL-safe base64,
/// `upcoming:` and `retiring:` marks dropped).
fn raw_keys(list: &str) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let encoded = entry
                .strip_prefix("upcoming:")
                .or_else(|| entry.strip_prefix("retiring:"))
                .unwrap_or(entry)
                .trim();
            STANDARD
                .decode(encoded)
                .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
                .ok()
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "shop".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_ignoring_env;

    fn config<const N: usize>(args: [&str; N]) -> Result<Config, String> {
        let cli = parse_ignoring_env(args).map_err(|error| error.to_string())?;
        Config::from_args(cli.serve)
    }

    #[test]
    fn defaults() {
        let config = config(["shop"]).unwrap();
        assert_eq!(config.port, 3000);
        assert_eq!(config.host, "127.0.0.1");
        assert!(config.keys_generated);
        assert_eq!(config.store, StoreChoice::Memory);
        assert!(config.instance.ends_with(":3000"));
        assert!(config.secure_cookies);
        assert!(!config.encrypt_sessions);
        assert_eq!(config.session_mode, SessionMode::Store);
    }

    #[test]
    fn token_mode_and_what_it_cannot_take() {
        let token = config(["shop", "--session-mode", "token"]).unwrap();
        assert_eq!(
            (token.session_mode, token.store),
            (SessionMode::Token, StoreChoice::Memory)
        );
        let with_redis = config([
            "shop",
            "--session-mode",
            "token",
            "--redis-url",
            "redis://127.0.0.1:6380",
        ])
        .unwrap();
        assert_eq!(
            with_redis.store,
            StoreChoice::Redis("redis://127.0.0.1:6380".into())
        );
        let sealed = config(["shop", "--session-mode", "token", "--session-encrypt", "1"]);
        assert!(sealed.unwrap_err().contains("SESSION_ENCRYPT"));
        let limited = config([
            "shop",
            "--session-mode",
            "token",
            "--max-sessions-per-user",
            "2",
        ]);
        assert!(limited.unwrap_err().contains("MAX_SESSIONS_PER_USER"));
        assert!(config(["shop", "--session-mode", "cookie"]).is_err());
    }

    #[test]
    fn upload_keys_come_from_the_session_keys_signing_key_first() {
        use base64::Engine as _;
        let (signing, upcoming): ([u8; 32], [u8; 32]) = (
            std::array::from_fn(|i| (i * 7 + 3) as u8 ^ 0x80),
            std::array::from_fn(|i| (i * 11 + 5) as u8 ^ 0x80),
        );
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let list = format!(
            "{},upcoming:{}",
            b64(&signing),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(upcoming)
        );
        let args = |encrypt: &str| {
            config([
                "shop",
                "--session-keys",
                &list,
                "--session-encrypt",
                encrypt,
            ])
            .unwrap()
        };
        assert!(
            args("0").uploads_seal.is_none(),
            "only with SESSION_ENCRYPT"
        );
        let seal = args("1").uploads_seal.expect("sealed uploads");
        let sealed = seal.seal("up", 0, b"chunk");
        let by_signing = UploadSeal::from_key_bytes(&[signing]).unwrap();
        assert_eq!(by_signing.open("up", 0, &sealed).unwrap(), b"chunk");
        let by_upcoming = UploadSeal::from_key_bytes(&[upcoming]).unwrap();
        assert_eq!(by_upcoming.open("up", 0, &sealed), None);
        assert!(seal
            .open("up", 0, &by_upcoming.seal("up", 0, b"x"))
            .is_some());
        // A generated key seals too.
        let generated = config(["shop", "--session-encrypt", "1"]).unwrap();
        assert!(generated.keys_generated && generated.uploads_seal.is_some());
    }

    #[test]
    fn explicit_settings() {
        let key = "Y59rLsxkmPe1yWDBjXj68UNGuKbpxtLvDbvJcDvRPJA=";
        let keys = format!("{key},{key}");
        let config = config([
            "shop",
            "--port",
            "4000",
            "--host",
            "0.0.0.0",
            "--instance",
            "a",
            "--session-keys",
            &keys,
            "--redis-url",
            "redis://127.0.0.1:6380",
            "--cookie-secure",
            "false",
            "--session-encrypt",
            "1",
        ])
        .unwrap();
        assert_eq!(
            (config.port, config.instance.as_str(), config.keys_generated),
            (4000, "a", false)
        );
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(
            config.store,
            StoreChoice::Redis("redis://127.0.0.1:6380".into())
        );
        assert!(!config.secure_cookies);
        assert!(config.encrypt_sessions);
    }

    #[test]
    fn database_url_wins_over_redis_in_store_mode_only() {
        let url = "postgres://app:pw@127.0.0.1:5433/shop";
        let postgres = config(["shop", "--database-url", url, "--redis-url", "x"]).unwrap();
        assert_eq!(postgres.store, StoreChoice::Postgres(url.into()));
        let token = config(["shop", "--session-mode", "token", "--database-url", url]);
        let error = token.unwrap_err();
        assert!(
            error.contains("DATABASE_URL") && !error.contains("pw"),
            "{error}"
        );
        let empty = config(["shop", "--database-url", " "]).unwrap();
        assert_eq!(empty.store, StoreChoice::Memory);
    }

    #[test]
    fn cluster_wins_empty_is_unset_and_bad_values_are_errors() {
        let cluster = config([
            "shop",
            "--redis-cluster-nodes",
            "127.0.0.1:7000, 127.0.0.1:7001",
            "--redis-url",
            "x",
        ]);
        assert_eq!(
            cluster.unwrap().store,
            StoreChoice::Cluster(vec!["127.0.0.1:7000".into(), "127.0.0.1:7001".into()])
        );
        let empty = config(["shop", "--redis-url", "", "--session-keys", " "]).unwrap();
        assert_eq!(
            (empty.store, empty.keys_generated),
            (StoreChoice::Memory, true)
        );
        assert!(config(["shop", "--port", "x"])
            .unwrap_err()
            .contains("--port"));
        assert!(config(["shop", "--cookie-secure", "maybe"])
            .unwrap_err()
            .contains("--cookie-secure"));
        let short = config(["shop", "--session-keys", "c2hvcnQ="]).unwrap_err();
        assert!(short.contains("at least 32"), "{short}");
        let sentinel = config([
            "shop",
            "--redis-sentinels",
            "127.0.0.1:26379,127.0.0.1:26380",
            "--redis-sentinel-master",
            "sessions",
            "--redis-url",
            "x",
        ]);
        assert_eq!(
            sentinel.unwrap().store,
            StoreChoice::Sentinel {
                sentinels: vec!["127.0.0.1:26379".into(), "127.0.0.1:26380".into()],
                master: "sessions".into()
            }
        );
        let control = config(["shop", "--instance", "a\u{7}b"]).unwrap_err();
        assert!(
            control.contains("INSTANCE") && control.contains("printable"),
            "{control}"
        );
        let named = config(["shop", "--host", "localhost"]).unwrap();
        assert_eq!(named.host, "localhost");
        let half = config(["shop", "--redis-sentinels", "127.0.0.1:26379"]).unwrap_err();
        assert!(half.contains("go together"), "{half}");
        assert!(
            !short.contains("c2hvcnQ="),
            "the key is not repeated: {short}"
        );
    }
}
