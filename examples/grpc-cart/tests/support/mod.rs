//! Test harness: in-process servers on free loopback ports, a store that can be made to
//! fail, and a throwaway `redis-server`.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_cart::pb::cart_client::CartClient;
use grpc_cart::{CartService, SessionChannel, TokenJar};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Endpoint;
use tower_stateless::{
    Applied, ChangeSet, Created, Cycled, HashedId, Lifetime, MemoryStore, Record, SessionLayer,
    SessionStore, SessionSummary, StoreError,
};

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

/// A `MemoryStore` that fails every call while `down` is set, and counts writes.
#[derive(Clone, Default)]
pub struct TestStore {
    pub inner: MemoryStore,
    down: Arc<AtomicBool>,
    writes: Arc<AtomicUsize>,
}

impl TestStore {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Calls that write (create, apply, touch, cycle_id, destroy) so far.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::backend("test store is down"))
        } else {
            Ok(())
        }
    }

    fn write(&self) -> Result<(), StoreError> {
        self.check()?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl SessionStore for TestStore {
    async fn load(&self, id: &HashedId, lifetime: Lifetime) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.load(id, lifetime).await
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        lifetime: Lifetime,
    ) -> Result<Created, StoreError> {
        self.write()?;
        self.inner.create(id, record, lifetime).await
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
    ) -> Result<Applied, StoreError> {
        self.write()?;
        self.inner.apply(id, changes, lifetime).await
    }

    async fn touch(&self, id: &HashedId, lifetime: Lifetime) -> Result<Applied, StoreError> {
        self.write()?;
        self.inner.touch(id, lifetime).await
    }

    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
    ) -> Result<Cycled, StoreError> {
        self.write()?;
        self.inner.cycle_id(old, new, changes, lifetime).await
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        self.write()?;
        self.inner.destroy(id).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        lifetime: Lifetime,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.check()?;
        self.inner.sessions_of_user(user_id, lifetime).await
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.write()?;
        self.inner.destroy_sessions_of_user(user_id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.check()
    }
}

/// A `redis-server` child on a free loopback port, without persistence; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts one, or returns `None` (after saying so loudly) if `redis-server` is not on
    /// `PATH`. Under `CI=true` a missing `redis-server` is a failure, not a skip.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{test}: redis-server is not on PATH, and CI=true requires it");
            }
            eprintln!("SKIPPED {test}: redis-server is not on PATH (install it to run this test)");
            return None;
        }
        // The port is free when picked but could be taken before Redis binds it: retry.
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("pick a free port")
                .port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            for _ in 0..200 {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Self { child, port });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("{test}: redis-server did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server now, as an outage.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
