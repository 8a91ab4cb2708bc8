//! Server settings from the environment.

use tower_stateless::{Key, Keys};

/// The port used when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 50051;

/// The server's settings. It always listens on 127.0.0.1.
#[derive(Debug)]
pub struct Config {
    /// `PORT` (default 50051).
    pub port: u16,
    /// `INSTANCE`: the name sent in every reply's `x-instance` metadata
    /// (default `grpc-cart:<port>`).
    pub instance: String,
    /// `SESSION_KEYS`: comma-separated base64 keys, the first signs, `upcoming:<base64>`
    /// marks one about to sign (default: a random key).
    pub keys: Keys,
    /// True when `SESSION_KEYS` was unset and a random key is used.
    pub keys_generated: bool,
    /// `REDIS_URL`; without it sessions live in this process's memory.
    pub redis_url: Option<String>,
}

impl Config {
    /// Reads the process environment (empty variables count as unset).
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
            None => DEFAULT_PORT,
        };
        let instance = var("INSTANCE").unwrap_or_else(|| format!("grpc-cart:{port}"));
        if instance.bytes().any(|byte| !(0x20..0x7f).contains(&byte)) {
            return Err(format!("INSTANCE={instance}: use printable ASCII"));
        }
        let (keys, keys_generated) = match var("SESSION_KEYS") {
            Some(list) => (
                Keys::from_base64_list(&list).map_err(|error| format!("SESSION_KEYS: {error}"))?,
                false,
            ),
            None => (Keys::new(Key::generate()), true),
        };
        Ok(Self {
            port,
            instance,
            keys,
            keys_generated,
            redis_url: var("REDIS_URL"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Config::from_lookup(|name| vars.get(name).map(|value| value.to_string()))
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.port, DEFAULT_PORT);
        assert_eq!(config.instance, "grpc-cart:50051");
        assert!(config.keys_generated);
        assert_eq!(config.redis_url, None);
    }

    #[test]
    fn explicit_settings() {
        let key = "Y59rLsxkmPe1yWDBjXj68UNGuKbpxtLvDbvJcDvRPJA=";
        let config = config(&[
            ("PORT", "50052"),
            ("INSTANCE", "b"),
            ("SESSION_KEYS", &format!("{key}, {key}")),
            ("REDIS_URL", "redis://127.0.0.1:6380"),
        ])
        .unwrap();
        assert_eq!((config.port, config.instance.as_str()), (50052, "b"));
        assert!(!config.keys_generated);
        assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6380"));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(config(&[("PORT", "x")]).unwrap_err().contains("PORT"));
        assert!(config(&[("SESSION_KEYS", "c2hvcnQ=")])
            .unwrap_err()
            .contains("at least 32"));
        assert!(config(&[("INSTANCE", "a\nb")])
            .unwrap_err()
            .contains("INSTANCE"));
    }
}
