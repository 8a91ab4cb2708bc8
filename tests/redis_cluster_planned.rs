//! A planned `CLUSTER FAILOVER` (and `CLUSTER FAILOVER FORCE`) under bounded traffic
//! through two stores with the local cache on: a three-primary Cluster with a replica
//! each on loopback; the sessions used all live on the primary that hands over.
//!
//! Counted (and asserted 0): acknowledged increments lost, acknowledged logouts undone,
//! stale reads once the instance has caught up. Printed: how long after the promotion
//! each instance wrote again.

#![allow(missing_docs, unreachable_pub)]

#[path = "support/planned.rs"]
mod planned;
#[path = "support/sessions.rs"]
mod sessions;
mod support;

use std::time::Duration;

use planned::Figures;
use sessions::sessions_with_a_counter;
use support::RedisCluster;
use tower_stateless::store::{HashedId, RedisTarget};
use tower_stateless::RedisStore;

/// Sessions created to find enough on the primary that hands over (about a third).
const CREATED: usize = 60;

/// `fenced`: the primary that hands over refuses writes without a replica
/// (`min-replicas-to-write 1`).
async fn planned_failover(force: bool, fenced: bool) -> Option<Figures> {
    let cluster = RedisCluster::start_with_replicas()?;
    let victim = (0..6).find(|&i| cluster.is_primary(i)).expect("a primary");
    let heir = cluster
        .replica_of(victim)
        .expect("the primary has a replica");
    let (victim, heir) = (&cluster.servers()[victim], &cluster.servers()[heir]);
    support::wait_for("the replica links up", Duration::from_secs(20), || {
        heir.cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let connect = || async {
        RedisStore::builder(RedisTarget::cluster(cluster.nodes()))
            .cache(1_000)
            .connect()
            .await
            .unwrap()
    };
    let (a, b) = (connect().await, connect().await);
    // Only the sessions on the primary that hands over.
    let on_victim = |ids: Vec<HashedId>| {
        let keys = victim.cli(&["--scan"]);
        ids.into_iter()
            .filter(|id| keys.contains(id.as_str()))
            .collect::<Vec<_>>()
    };
    let ids = on_victim(sessions_with_a_counter(&a, CREATED).await);
    let doomed = on_victim(sessions_with_a_counter(&a, CREATED).await);
    assert!(
        ids.len() >= 5 && doomed.len() >= 5,
        "sessions on the primary"
    );
    assert_eq!(victim.cli(&["WAIT", "1", "5000"]), "1");
    if fenced {
        victim.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    }

    let fail_over = || {
        let command: &[&str] = if force {
            &["CLUSTER", "FAILOVER", "FORCE"]
        } else {
            &["CLUSTER", "FAILOVER"]
        };
        assert_eq!(heir.cli(command), "OK");
    };
    let truth = || async {
        support::wait_for(
            "the old primary is a replica",
            Duration::from_secs(30),
            || victim.cli(&["ROLE"]).starts_with("slave"),
        );
        (RedisStore::connect(RedisTarget::cluster(cluster.nodes())).await).unwrap()
    };
    let figures = planned::measure(&a, &b, &ids, &doomed, heir.url(), fail_over, truth).await;
    Some(figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_cluster_failover_loses_nothing_with_a_cache() {
    if let Some(figures) = planned_failover(false, false).await {
        planned::check(&figures, "planned CLUSTER FAILOVER, cache on");
    }
}

/// `FORCE` skips the handshake in which the primary stops taking writes until its
/// replica has them all: writes it acknowledges after the replica's last copy, until it
/// hears of the promotion, are lost. Measured and printed; asserted: nothing stale and
/// writes resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_cluster_failover_is_measured() {
    let Some(figures) = planned_failover(true, false).await else {
        return;
    };
    figures.print("CLUSTER FAILOVER FORCE, cache on");
    assert!(figures
        .writes_again_after_promotion
        .iter()
        .all(Option::is_some));
    assert_eq!(figures.stale_reads, 0, "stale reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_failover_of_a_fenced_primary_is_measured() {
    let Some(figures) = planned_failover(true, true).await else {
        return;
    };
    figures
        .print("CLUSTER FAILOVER FORCE, old primary fenced with min-replicas-to-write 1, cache on");
    assert!(figures
        .writes_again_after_promotion
        .iter()
        .all(Option::is_some));
    assert_eq!(figures.stale_reads, 0, "stale reads");
}
