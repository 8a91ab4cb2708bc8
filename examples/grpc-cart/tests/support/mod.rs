//! Test harness: in-process servers on free loopback ports. The instrumented store and
//! the `redis-server` harness are the crate's own (`tests/layer/instrumented.rs`,
//! `tests/support/mod.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use grpc_cart::pb::cart_client::CartClient;
use grpc_cart::{CartService, SessionChannel, TokenJar};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Endpoint;
use tower_stateless::SessionLayer;

pub type Client = CartClient<SessionChannel>;

/// A cart server on 127.0.0.1, on a port the OS picked; stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub instance: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(layer: SessionLayer, instance: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let service = CartService::new(instance).unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            grpc_cart::serve(listener, layer, service, async {
                let _ = stop.await;
            })
            .await
            .expect("server failed");
        });
        Self {
            addr,
            instance: instance.to_owned(),
            shutdown: Some(shutdown),
            task,
        }
    }

    /// A client of this server whose token lives in `jar`.
    pub async fn client(&self, jar: &TokenJar) -> Client {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connect to the test server");
        CartClient::new(SessionChannel::new(channel, jar.clone()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}
