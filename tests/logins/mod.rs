//! Logins through a real layer on any store: the session limit under concurrency.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};
use tower_stateless::store::{Expiry, SessionStore, Timestamp};
use tower_stateless::{Key, Session, SessionLayer};

/// Logs the user named in the path in (a new ID, bound to the user), as a login does.
async fn login(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let session = (request.extensions().get::<Session>())
        .expect("layer present")
        .clone();
    let user = request.uri().path().trim_start_matches('/').to_owned();
    session.cycle_id();
    session.set_user_id(user);
    Ok(Response::new(Full::new(Bytes::from_static(b"welcome"))))
}

/// With a limit of one session per user, `rounds` times: two instances (layers sharing
/// `store` and a key) log one fresh user in at the same moment, then the user's live
/// sessions are counted. Returns the rounds that left none; each round must also
/// answer both logins with 200.
pub async fn rounds_left_without_a_session<S: SessionStore + Clone>(
    store: S,
    rounds: usize,
) -> usize {
    let key = Key::generate();
    let instance = || {
        SessionLayer::builder(store.clone(), key.clone())
            .with_max_sessions_per_user(1)
            .build()
            .expect("valid configuration")
            .layer(service_fn(login))
    };
    let (one, other) = (instance(), instance());
    let mut without = 0;
    for round in 0..rounds {
        let user = format!("racer-{}-{round}", std::process::id());
        let send = |service| {
            let request = Request::post(format!("/{user}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            tokio::spawn(async move {
                let response: Response<_> = ServiceExt::oneshot(service, request).await.unwrap();
                response.status()
            })
        };
        let (a, b) = (send(one.clone()), send(other.clone()));
        assert_eq!(a.await.unwrap(), StatusCode::OK);
        assert_eq!(b.await.unwrap(), StatusCode::OK);
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        let expiry = Expiry::new(now, Duration::from_secs(3600), Duration::from_secs(86_400));
        let live = store.sessions_of_user(&user, expiry).await.unwrap().len();
        assert!(
            live <= 1,
            "round {round}: {live} sessions, over the limit of 1"
        );
        if live == 0 {
            without += 1;
        }
    }
    without
}
