//! The fleet's control endpoint, behind the page's fleet panel: the instances, and a way
//! to kill one (SIGKILL, a crash) or start it again. nginx routes `/fleet/` to it; it
//! listens on loopback only.
//!
//! A request must carry `X-Fleet-Control: 1`, a header that another site's page cannot
//! send without a CORS preflight (which this never grants), and name a loopback host (as
//! nginx passes it on), which a DNS-rebound name is not.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Request, State};
use axum::http::header::HOST;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::Fleet;

/// The header a control request must carry.
pub const CONTROL_HEADER: &str = "x-fleet-control";

#[derive(Serialize)]
struct Instances {
    instances: Vec<InstanceState>,
}

#[derive(Serialize)]
struct InstanceState {
    name: String,
    port: u16,
    running: bool,
}

/// Serves the control endpoint on `listener` until the task is dropped.
pub async fn serve(fleet: Arc<Mutex<Fleet>>, listener: tokio::net::TcpListener) {
    let app = Router::new()
        .route("/fleet/instances", get(list))
        .route("/fleet/instances/{name}/{action}", post(act))
        .layer(axum::middleware::from_fn(only_from_the_page))
        .with_state(fleet);
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("fleet control: {error}");
    }
}

async fn only_from_the_page(request: Request, next: Next) -> Response {
    let marked = request
        .headers()
        .get(CONTROL_HEADER)
        .is_some_and(|value| value == "1");
    let host = request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !marked || !is_loopback_host(host) {
        return StatusCode::FORBIDDEN.into_response();
    }
    next.run(request).await
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

async fn list(State(fleet): State<Arc<Mutex<Fleet>>>) -> Json<Instances> {
    let fleet = fleet.lock().unwrap_or_else(|p| p.into_inner());
    Json(Instances {
        instances: fleet
            .instances
            .iter()
            .map(|instance| InstanceState {
                name: instance.name.clone(),
                port: instance.port,
                running: instance.is_running(),
            })
            .collect(),
    })
}

/// `kill` or `restart` the instance named `name`; starting waits (off the async
/// threads) until it answers its health check.
async fn act(
    State(fleet): State<Arc<Mutex<Fleet>>>,
    Path((name, action)): Path<(String, String)>,
) -> StatusCode {
    if action != "kill" && action != "restart" {
        return StatusCode::NOT_FOUND;
    }
    let outcome = tokio::task::spawn_blocking(move || {
        let mut fleet = fleet.lock().unwrap_or_else(|p| p.into_inner());
        let instance = fleet
            .instances
            .iter_mut()
            .find(|instance| instance.name == name)?;
        Some(if action == "kill" {
            instance.kill();
            Ok(())
        } else {
            instance.start()
        })
    })
    .await;
    match outcome {
        Ok(Some(Ok(()))) => StatusCode::NO_CONTENT,
        Ok(None) => StatusCode::NOT_FOUND,
        Ok(Some(Err(error))) => {
            eprintln!("fleet control: {error}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn status(host: &str, marked: bool) -> StatusCode {
        let app: Router = Router::new()
            .route("/fleet/instances", get(|| async { "listed" }))
            .layer(axum::middleware::from_fn(only_from_the_page));
        let mut request = Request::get("/fleet/instances").header(HOST, host);
        if marked {
            request = request.header(CONTROL_HEADER, "1");
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.status()
    }

    #[tokio::test]
    async fn only_marked_requests_to_a_loopback_host_pass() {
        assert_eq!(status("127.0.0.1:8080", true).await, StatusCode::OK);
        assert_eq!(status("127.0.0.1:8080", false).await, StatusCode::FORBIDDEN);
        assert_eq!(
            status("rebound.example:8080", true).await,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn only_loopback_hosts() {
        for host in ["127.0.0.1", "127.0.0.1:8080", "localhost:8080", "[::1]:80"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "10.0.0.1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
