//! Security events: rejected tokens are counted by reason and logged at a bounded rate,
//! never with the token.

use std::time::Duration;

use axum::http::StatusCode;

use crate::logs::Logs;
use crate::{tamper, App};

/// The `count` and `suppressed` fields of each logged rejection for `reason`.
fn logged(logs: &Logs, reason: &str) -> Vec<(u64, u64)> {
    let field = |line: &str, name: &str| -> u64 {
        let start = line.find(&format!(" {name}=")).expect(name) + name.len() + 2;
        let digits: String = line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    logs.lines_with(&format!("reason=\"{reason}\""))
        .iter()
        .map(|line| (field(line, "count"), field(line, "suppressed")))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn rejected_tokens_are_counted_by_reason_and_logged_at_a_bounded_rate() {
    let app = App::new();
    let genuine = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    let forged = tamper(&genuine);
    let alice = app.login("alice").await;
    let ended = app.login("bob").await;
    app.send("POST", "/logout", Some(&ended)).await;

    let ((), logs) = Logs::capture(async {
        // Guessing: twenty forged tokens in a burst, then one more a second later.
        for _ in 0..20 {
            let reply = app.send("GET", "/get/a", Some(&forged)).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        app.send("GET", "/get/a", Some(&forged)).await;

        app.send("GET", "/get/a", Some("__Host-id=short")).await;

        // Replay of a logged-out session's token: by a read, then by a blind write
        // (which starts a new session).
        app.send("GET", "/get/a", Some(&ended)).await;
        let reply = app.send("POST", "/set/b/1", Some(&ended)).await;
        assert_ne!(reply.cookie(), None);

        // Revoked while in flight: the handler saw the session live, then a logout
        // everywhere landed before its write.
        app.store.log_out_before_write("alice");
        let reply = app.send("POST", "/read-then-add/n", Some(&alice)).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
    })
    .await;
    let text = logs.text();
    println!("{text}");

    // Five lines in the first second, then the count goes on and names what was skipped.
    assert_eq!(
        logged(&logs, "forged"),
        [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (21, 15)]
    );
    assert_eq!(logged(&logs, "malformed"), [(1, 0)]);
    assert_eq!(logged(&logs, "unknown"), [(1, 0), (2, 0)]);
    assert_eq!(logged(&logs, "revoked"), [(1, 0)]);

    // Never a token or any part of one: only a short hash.
    for cookie in [&genuine, &forged, &alice, &ended] {
        let token = cookie.split_once('=').unwrap().1;
        let (id, tag) = token.split_once('.').unwrap();
        assert!(
            !text.contains(id) && !text.contains(tag),
            "{cookie} in {text}"
        );
    }
    for line in logs.lines_with("rejected a session token") {
        assert!(
            line.contains("clue=token-sha256:")
                || line.contains("clue=session:")
                || line.contains("clue=-"),
            "{line}"
        );
    }
}
