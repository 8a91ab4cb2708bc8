//! Configuration from the environment.

use std::net::IpAddr;

use tower_stateless::{Key, Keys};

/// Where sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// In this process: for one development instance only.
    Memory,
    /// One Redis server (`REDIS_URL`).
    Redis(String),
    /// A Redis Cluster (`REDIS_CLUSTER_NODES`, comma-separated `host:port`).
    Cluster(Vec<String>),
}

/// The shop's settings.
#[derive(Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub instance: String,
    pub keys: Keys,
    /// True when `SESSION_KEYS` was unset and a random key is used.
    pub keys_generated: bool,
    pub store: StoreChoice,
    pub secure_cookies: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        })
    }

    /// Reads settings through `var` (the environment, or a map in tests).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let port = match var("PORT") {
            Some(port) => port
                .trim()
                .parse()
                .map_err(|_| format!("PORT={port} is not a port number"))?,
            None => 3000,
        };
        let host = match var("HOST") {
            Some(host) => host
                .trim()
                .parse()
                .map_err(|_| format!("HOST={host} is not an IP address"))?,
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let instance = var("INSTANCE").unwrap_or_else(|| format!("{}:{port}", hostname()));
        let (keys, keys_generated) = match var("SESSION_KEYS") {
            Some(list) => (
                Keys::from_base64_list(&list).map_err(|error| format!("SESSION_KEYS: {error}"))?,
                false,
            ),
            None => (Keys::new(Key::generate()), true),
        };
        let store = match (var("REDIS_CLUSTER_NODES"), var("REDIS_URL")) {
            (Some(nodes), _) => StoreChoice::Cluster(
                nodes
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            (None, Some(url)) => StoreChoice::Redis(url),
            (None, None) => StoreChoice::Memory,
        };
        let secure_cookies = match var("COOKIE_SECURE").as_deref().map(str::trim) {
            None | Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => return Err(format!("COOKIE_SECURE={other}: use true or false")),
        };
        Ok(Self {
            host,
            port,
            instance,
            keys,
            keys_generated,
            store,
            secure_cookies,
        })
    }
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
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.port, 3000);
        assert!(config.keys_generated);
        assert_eq!(config.store, StoreChoice::Memory);
        assert!(config.instance.ends_with(":3000"));
        assert!(config.secure_cookies);
    }

    #[test]
    fn explicit_settings() {
        let key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
        let config = config(&[
            ("PORT", "4000"),
            ("INSTANCE", "a"),
            ("SESSION_KEYS", &format!("{key},{key}")),
            ("REDIS_URL", "redis://127.0.0.1:6380"),
            ("COOKIE_SECURE", "false"),
        ])
        .unwrap();
        assert_eq!(
            (config.port, config.instance.as_str(), config.keys_generated),
            (4000, "a", false)
        );
        assert_eq!(
            config.store,
            StoreChoice::Redis("redis://127.0.0.1:6380".into())
        );
        assert!(!config.secure_cookies);
    }

    #[test]
    fn cluster_wins_and_bad_values_are_errors() {
        let cluster = config(&[
            ("REDIS_CLUSTER_NODES", "127.0.0.1:7000, 127.0.0.1:7001"),
            ("REDIS_URL", "x"),
        ]);
        assert_eq!(
            cluster.unwrap().store,
            StoreChoice::Cluster(vec!["127.0.0.1:7000".into(), "127.0.0.1:7001".into()])
        );
        assert!(config(&[("PORT", "x")]).unwrap_err().contains("PORT"));
        assert!(config(&[("SESSION_KEYS", "c2hvcnQ=")])
            .unwrap_err()
            .contains("at least 32"));
    }
}
