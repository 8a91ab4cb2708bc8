//! Warning about a Redis that may evict sessions: an evicted session silently logs its
//! user out.

use ::redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use ::redis::Value;

use super::conn::Conn;
use super::store::RedisStore;

impl RedisStore {
    /// Reads Redis's `maxmemory-policy` (of every primary, on a cluster) and logs a
    /// warning if it lets Redis evict keys: an evicted session silently logs its user out.
    ///
    /// Returns the policy found (an evicting one first), or `None` if it could not be read,
    /// e.g. because the ACL user may not run `CONFIG GET`; that is only logged at debug
    /// level. [`connect`](super::RedisStoreBuilder::connect) calls it once.
    pub async fn check_eviction_policy(&self) -> Option<String> {
        let mut command = ::redis::cmd("CONFIG");
        command.arg("GET").arg("maxmemory-policy");
        let reply = match &self.conn {
            Conn::Single(_) | Conn::Sentinel(_) => {
                command.query_async::<Value>(&mut self.conn.clone()).await
            }
            Conn::Cluster(cluster) => {
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                cluster.clone().route_command(command, all).await
            }
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(%error, "cannot read Redis maxmemory-policy; eviction not checked");
                return None;
            }
        };
        let mut strings = Vec::new();
        flatten_strings(&reply, &mut strings);
        let policies: Vec<&String> = strings
            .windows(2)
            .filter(|pair| pair[0].eq_ignore_ascii_case("maxmemory-policy"))
            .map(|pair| &pair[1])
            .collect();
        match policies
            .iter()
            .find(|policy| policy.as_str() != "noeviction")
        {
            Some(policy) => {
                tracing::warn!(
                    maxmemory_policy = %policy,
                    "Redis may evict session keys under memory pressure, which silently logs users out; \
                     set maxmemory-policy to noeviction"
                );
                Some((*policy).clone())
            }
            None => policies.first().map(|policy| (*policy).clone()),
        }
    }
}

/// Every string in a reply, depth first, in order.
fn flatten_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => out.push(text.clone()),
        Value::Array(values) | Value::Set(values) => {
            values.iter().for_each(|value| flatten_strings(value, out))
        }
        Value::Map(pairs) => pairs.iter().for_each(|(key, value)| {
            flatten_strings(key, out);
            flatten_strings(value, out);
        }),
        _ => {}
    }
}
