//! Random concurrent operations on a few sessions of a few users, checked against what
//! the store acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fixture::{at, create, data, fresh_id, fresh_user};
use crate::store::{Applied, ChangeSet, Cycled, HashedId, Incremented, SessionStore, Swapped};

/// Concurrent clients, users, sessions per user, and operations per client (an
/// operation on a session that has ended logs in again instead).
const CLIENTS: u64 = 4;
const USERS: usize = 3;
const SESSIONS_PER_USER: usize = 2;
const OPERATIONS: usize = 120;
/// Seeds run one after another; each gives every client its own sequence of operations.
const SEEDS: [u64; 2] = [0x5eed_0001, 0x5eed_0002];

/// Several clients run seeded random sequences of insert, remove, increment,
/// read-modify-write, touch, `cycle_id`, `destroy` and `destroy_sessions_of_user`,
/// concurrently, on a few sessions of a few users. Afterwards:
///
/// * no destroyed ID, and no ID a session moved away from, is live (a store may refuse a
///   contended `cycle_id` with an error; the session must then stay where it was);
/// * no session is live under two IDs;
/// * every session of a user whose sessions were all destroyed is dead under every ID;
/// * in every live session, each counter holds the sum of the acknowledged increments,
///   each list holds every acknowledged append, and each client's own keys hold what
///   that client's last acknowledged write left there.
pub async fn random_operations_keep_the_invariants<S: SessionStore>(store: Arc<S>) {
    for seed in SEEDS {
        run_seed(store.clone(), seed).await;
    }
}

/// One logical session: where it lives now, and what its writes were acknowledged to do.
#[derive(Debug, Default, Clone)]
struct Model {
    user: String,
    current: Option<HashedId>,
    /// Every ID it ever had.
    ids: Vec<HashedId>,
    /// IDs that must be dead: destroyed, or moved away from.
    dead: HashSet<HashedId>,
    logged_out: bool,
    increments: i64,
    appended: Vec<u64>,
    /// Client-owned key -> value after that client's last acknowledged write.
    owned: HashMap<String, Option<String>>,
}

/// One slot per session a user may hold: the generations of that session, the last one
/// current. When it ends, a client logs in again and a new generation starts.
type Slots = Arc<Vec<Mutex<Vec<Model>>>>;

async fn run_seed<S: SessionStore>(store: Arc<S>, seed: u64) {
    let now = at(Duration::from_secs(1));
    let users: Vec<String> = (0..USERS).map(|_| fresh_user("random")).collect();
    let mut slots = Vec::new();
    for user in &users {
        for _ in 0..SESSIONS_PER_USER {
            slots.push(Mutex::new(vec![login(&*store, user).await]));
        }
    }
    let slots: Slots = Arc::new(slots);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (store, slots, users) = (store.clone(), slots.clone(), users.clone());
        clients.spawn(async move {
            let mut random = SplitMix(seed ^ (client << 32));
            for step in 0..OPERATIONS {
                operate(&*store, &slots, &users, &mut random, client, step).await;
            }
        });
    }
    while let Some(client) = clients.join_next().await {
        client.expect("a client panicked");
    }
    let (mut sessions, mut acknowledged) = (0, 0);
    for slot in slots.iter() {
        let generations = slot.lock().expect("slot lock").clone();
        for model in &generations {
            check(&*store, model, now).await;
            sessions += 1;
            acknowledged += model.increments + model.appended.len() as i64;
            for id in &model.ids {
                store.destroy(id).await.expect("destroy failed");
            }
        }
    }
    // Not a vacuous run: sessions kept being logged into, and a fair share of the
    // operations (about 40% are increments or appends) were acknowledged writes.
    let operations = (CLIENTS as usize * OPERATIONS) as i64;
    assert!(
        sessions > slots.len() && acknowledged * 10 >= operations,
        "only {sessions} sessions and {acknowledged} acknowledged writes"
    );
}

/// A new session of `user`, as a login makes it.
async fn login<S: SessionStore>(store: &S, user: &str) -> Model {
    let id = create(store, &[], Some(user)).await;
    Model {
        user: user.to_owned(),
        current: Some(id.clone()),
        ids: vec![id],
        ..Model::default()
    }
}

async fn operate<S: SessionStore>(
    store: &S,
    slots: &Slots,
    users: &[String],
    random: &mut SplitMix,
    client: u64,
    step: usize,
) {
    let now = at(Duration::from_secs(1));
    let slot = &slots[random.below(slots.len() as u64) as usize];
    let (generation, current, user) = {
        let generations = slot.lock().expect("slot lock");
        let model = generations.last().expect("a slot has a generation");
        (
            generations.len() - 1,
            model.current.clone(),
            model.user.clone(),
        )
    };
    let Some(id) = current else {
        // Its session ended: log in again.
        let model = login(store, &user).await;
        slot.lock().expect("slot lock").push(model);
        return;
    };
    let with_model = |update: &mut dyn FnMut(&mut Model)| {
        update(&mut slot.lock().expect("slot lock")[generation]);
    };
    match random.below(100) {
        // Insert or remove a key only this client writes.
        0..=29 => {
            let key = format!("c{client}-{}", random.below(3));
            let value = (random.below(2) == 0).then(|| step.to_string());
            let changes = match &value {
                Some(value) => ChangeSet::default().with_set(key.clone(), value.clone()),
                None => ChangeSet::default().with_removed(key.clone()),
            };
            // Only this client writes these keys, one call at a time: the last
            // acknowledged write is what the key must hold.
            let applied = store.apply(&id, &changes, now).await.expect("apply failed");
            if applied == Applied::Saved {
                with_model(&mut |model| {
                    model.owned.insert(key.clone(), value.clone());
                });
            }
        }
        30..=54 => {
            let added = store.increment(&id, "n", 1, now).await;
            if let Incremented::Value(_) = added.expect("increment failed") {
                with_model(&mut |model| model.increments += 1);
            }
        }
        55..=69 => {
            if append(store, &id, step as u64, now).await {
                with_model(&mut |model| model.appended.push(step as u64));
            }
        }
        70..=79 => {
            let _ = store.touch(&id, now).await.expect("touch failed");
        }
        80..=93 => {
            let new = fresh_id();
            with_model(&mut |model| model.ids.push(new.clone()));
            // A store may give up a contended cycle with an error (a 503 for the layer);
            // the session must then stay where it was, which the checks verify.
            let cycled = store.cycle_id(&id, &new, &ChangeSet::default(), now).await;
            if matches!(cycled, Ok(Cycled::Saved)) {
                with_model(&mut |model| {
                    model.dead.insert(id.clone());
                    if model.current.as_ref() == Some(&id) {
                        model.current = Some(new.clone());
                    }
                });
            }
        }
        94..=97 => {
            store.destroy(&id).await.expect("destroy failed");
            with_model(&mut |model| {
                model.dead.insert(id.clone());
                if model.current.as_ref() == Some(&id) {
                    model.current = None;
                }
            });
        }
        _ => {
            let user = &users[random.below(users.len() as u64) as usize];
            // Only the sessions that existed when the call started must end; a login
            // racing the call may survive it.
            let existing: Vec<usize> = slots
                .iter()
                .map(|slot| slot.lock().expect("slot lock").len())
                .collect();
            store
                .destroy_sessions_of_user(user)
                .await
                .expect("destroy_sessions_of_user failed");
            for (slot, existing) in slots.iter().zip(existing) {
                let mut generations = slot.lock().expect("slot lock");
                for model in generations.iter_mut().take(existing) {
                    if &model.user == user {
                        model.logged_out = true;
                        model.current = None;
                    }
                }
            }
        }
    }
}

/// Appends `item` to the list under `log` by compare-and-set; whether it landed.
async fn append<S: SessionStore>(
    store: &S,
    id: &HashedId,
    item: u64,
    now: crate::store::Expiry,
) -> bool {
    let mut current = None::<String>;
    loop {
        let mut list: Vec<u64> = current
            .as_deref()
            .map(|json| serde_json::from_str(json).expect("a JSON list"))
            .unwrap_or_default();
        list.push(item);
        let new = serde_json::to_string(&list).expect("serializable");
        let swapped = store
            .compare_and_set(id, "log", current.as_deref(), Some(&new), now)
            .await
            .expect("compare_and_set failed");
        match swapped {
            Swapped::Saved => return true,
            Swapped::Conflict(now) => current = now,
            Swapped::Gone => return false,
        }
    }
}

async fn check<S: SessionStore>(store: &S, model: &Model, now: crate::store::Expiry) {
    let mut live = Vec::new();
    for id in &model.ids {
        if let Some(data) = data(store, id, now).await {
            live.push((id.clone(), data));
        }
    }
    for (id, _) in &live {
        assert!(
            !model.dead.contains(id),
            "a destroyed or moved-away ID is live again"
        );
    }
    assert!(
        live.len() <= 1,
        "a session is live under {} IDs",
        live.len()
    );
    if model.logged_out {
        assert!(
            live.is_empty(),
            "a session of a logged-out-everywhere user is live"
        );
    }
    let Some((_, data)) = live.pop() else {
        return;
    };
    let counted: i64 = data.get("n").map_or(0, |n| n.parse().expect("an integer"));
    assert_eq!(
        counted, model.increments,
        "every acknowledged increment counts"
    );
    let mut appended: Vec<u64> = data
        .get("log")
        .map(|json| serde_json::from_str(json).expect("a JSON list"))
        .unwrap_or_default();
    appended.sort_unstable();
    let mut expected = model.appended.clone();
    expected.sort_unstable();
    assert_eq!(appended, expected, "every acknowledged append landed");
    for (key, value) in &model.owned {
        assert_eq!(
            data.get(key),
            value.as_ref(),
            "a client's own key holds its last acknowledged write"
        );
    }
}

/// SplitMix64: a small seeded generator, so a failing sequence can be replayed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
