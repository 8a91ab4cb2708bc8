//! The HTTP app: the shop's routes, what its handlers share, and its health check.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::{get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_layer::Layer as _;
use tower_stateless::failure::DefaultOnFailure;
use tower_stateless::store::SessionStore;
use tower_stateless::{SessionLayer, SessionService};

use crate::chunks::Chunks;
use crate::instance::{InstanceHeader, WithInstance};
use crate::objects::{ObjectUploads, PART_SIZE};
use crate::{account, cart, devices, page, uploads};

/// What handlers share: the session store (for health checks) and the chunk store.
#[derive(Clone)]
pub struct AppState<S> {
    /// The session store; in token mode only what the health check pings (Redis, which
    /// records revocations, or nothing in memory).
    pub store: S,
    pub chunks: Chunks,
    /// With `UPLOADS_BUCKET`: uploads go to object storage, and `chunks` only counts
    /// them and lists them for the sweep.
    pub objects: Option<ObjectUploads>,
    /// Sessions sealed in cookies: no store lists a user's sessions.
    pub token_mode: bool,
    /// With `SESSION_ENCRYPT`: upload bytes are sealed before they are stored (in the
    /// chunk store or the bucket) and opened when read back.
    pub uploads_seal: Option<crate::UploadSeal>,
}

/// The shop as one service: its routes behind the session layer, every response marked
/// with the `x-instance` header. Cheap to clone (axum clones it per connection, tests per
/// request).
pub type App = WithInstance<SessionService<Router, DefaultOnFailure>>;

/// The shop's routes behind `layer`, and with `metrics`, `GET /metrics`: what the
/// recorder has counted, in Prometheus text format (the session layer's store calls and
/// latency, failure responses, rejected tokens).
pub fn app<S: SessionStore + Clone>(
    state: AppState<S>,
    layer: SessionLayer,
    instance: &str,
    metrics: Option<PrometheusHandle>,
) -> App {
    let instance =
        HeaderValue::from_str(instance).expect("Config checked INSTANCE: printable ASCII");
    // Object storage takes parts of S3's least size; chunks kept in the store are smaller.
    let chunk_limit = if state.objects.is_some() {
        PART_SIZE
    } else {
        uploads::MAX_CHUNK
    };
    let mut routes = Router::new()
        .route("/login", post(account::login))
        .route("/logout", post(account::logout))
        .route("/me", get(account::me))
        .route("/sessions", get(devices::list::<S>))
        .route(
            "/sessions/others/logout",
            post(devices::log_out_others::<S>),
        )
        .route("/cart", get(cart::list))
        .route("/cart/items", post(cart::add))
        .route(
            "/cart/items/{sku}",
            get(cart::item).put(cart::set).delete(cart::remove),
        )
        .route("/checkout", post(cart::checkout))
        .route("/uploads", post(uploads::create::<S>))
        .route("/uploads/{id}", get(uploads::status))
        .route(
            "/uploads/{id}/chunks/{n}",
            put(uploads::put_chunk::<S>).layer(DefaultBodyLimit::max(chunk_limit)),
        )
        .route("/uploads/{id}/complete", post(uploads::complete::<S>))
        .route("/healthz", get(healthz::<S>))
        .merge(page::routes())
        .with_state(state);
    if let Some(recorder) = metrics {
        let render = move || {
            let recorder = recorder.clone();
            async move {
                let text = recorder.render();
                ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
            }
        };
        // Behind the session layer as well, which costs it nothing: it never reads a
        // session.
        routes = routes.route("/metrics", get(render));
    }
    // The layers wrap the router once, not each route (`Router::layer`, under which axum
    // clones a route's whole stack, the state in it included, for every request), and
    // directly, not as the fallback of an outer router, whose matching every request
    // would pay again.
    InstanceHeader::new(instance).layer(layer.layer(routes))
}

async fn healthz<S: SessionStore>(State(state): State<AppState<S>>) -> StatusCode {
    match state.store.ping().await {
        Ok(()) => StatusCode::OK,
        Err(error) => {
            let error = crate::error::chain(&error);
            tracing::warn!(%error, "health check: session store unavailable");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
