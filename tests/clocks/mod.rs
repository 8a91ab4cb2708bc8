//! Instances whose clocks differ by minutes, on one store: sessions end when the store's
//! clock says, whichever instance wrote or reads them.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_stateless::store::SessionStore;
use tower_stateless::{Key, Session, SessionLayer};

const SKEW: Duration = Duration::from_secs(10 * 60);
/// Short enough to wait out in a test, far shorter than the skew.
const LIFETIME: Duration = Duration::from_secs(6);

/// `POST` writes a visit, `GET` answers whether the session holds one.
async fn visits(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let session = (request.extensions().get::<Session>())
        .expect("layer present")
        .clone();
    let body = if request.method() == http::Method::POST {
        session.increment_later("visits", 1).expect("an integer");
        "written"
    } else if session
        .get::<i64>("visits")
        .await
        .expect("store up")
        .is_some()
    {
        "live"
    } else {
        "gone"
    };
    Ok(Response::new(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))))
}

/// What the two instances saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    /// A session the slow instance just created, read at once by the fast one: "live"
    /// is right (a fast clock ends sessions early).
    pub fresh_read_elsewhere: String,
    /// A session past its absolute lifetime (created by the fast instance, written by the
    /// slow one twice since, read by the slow one 1.2 lifetimes after its creation):
    /// "gone" is right (a slow clock keeps sessions too long).
    pub past_lifetime: String,
}

impl Seen {
    /// What instances that follow the store's clock see.
    pub fn agreeing() -> Self {
        Self {
            fresh_read_elsewhere: "live".into(),
            past_lifetime: "gone".into(),
        }
    }

    /// What instances on their own clocks see.
    pub fn on_own_clocks() -> Self {
        Self {
            fresh_read_elsewhere: "gone".into(),
            past_lifetime: "live".into(),
        }
    }
}

/// Two instances on `store`, one clock 10 minutes fast and one 10 minutes slow, each
/// following the store's clock or not, with a 6-second lifetime.
pub async fn two_skewed_instances<S: SessionStore + Clone>(store: S, follow: bool) -> Seen {
    let key = Key::generate();
    let instance = |fast: bool| {
        let clock = move || {
            let now = SystemTime::now();
            if fast {
                now + SKEW
            } else {
                now - SKEW
            }
        };
        SessionLayer::builder(store.clone(), key.clone())
            .with_idle_timeout(LIFETIME)
            .with_absolute_lifetime(LIFETIME)
            .with_refresh_after(Duration::from_millis(1))
            .with_secure(false)
            .with_clock(clock)
            .with_store_clock(follow)
            .build()
            .expect("valid configuration")
            .layer(service_fn(visits))
    };
    let (fast, slow) = (instance(true), instance(false));
    if follow {
        // Each layer started its first reading of the store's clock when it was built:
        // wait until both have it (a session new on one is live on the other).
        let started = std::time::Instant::now();
        loop {
            let cookie = send(slow.clone(), "POST", None)
                .await
                .1
                .expect("a new session");
            if send(fast.clone(), "GET", Some(&cookie)).await.0 == "live" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no clock reading in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let cookie = send(slow.clone(), "POST", None)
        .await
        .1
        .expect("a new session");
    let fresh_read_elsewhere = send(fast.clone(), "GET", Some(&cookie)).await.0;

    let cookie = send(fast.clone(), "POST", None)
        .await
        .1
        .expect("a new session");
    // Written at 0.3 and 0.6 lifetimes (well within it), read at 1.2 (well past it).
    for _ in 0..2 {
        tokio::time::sleep(LIFETIME * 3 / 10).await;
        assert_eq!(send(slow.clone(), "POST", Some(&cookie)).await.0, "written");
    }
    tokio::time::sleep(LIFETIME * 6 / 10).await;
    let past_lifetime = send(slow.clone(), "GET", Some(&cookie)).await.0;
    Seen {
        fresh_read_elsewhere,
        past_lifetime,
    }
}

/// The answer's body and the session cookie it set (`name=value`), if any.
async fn send<S>(service: S, method: &str, cookie: Option<&str>) -> (String, Option<String>)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>,
{
    let mut request = Request::builder().method(method).uri("/");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = (response.headers().get(header::SET_COOKIE)).map(|value| {
        value
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    });
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8(body.to_vec()).unwrap(), set_cookie)
}
