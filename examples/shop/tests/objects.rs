//! Uploads in object storage: a fleet of three shops with `UPLOADS_BUCKET`, in front of
//! a real S3 API server (moto's, started here on a free loopback port; it enforces S3's
//! 5 MiB least part size). Parts sent through different instances become one object with
//! exactly the bytes; an instance killed mid-upload costs nothing; Redis never holds a
//! chunk's bytes; an abandoned upload leaves no parts once expired.

#![allow(missing_docs)]

// Only part of the fleet tests' client is used here.
#[allow(dead_code)]
#[path = "fleet/client.rs"]
mod client;
mod tools;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use shop::fleet::{
    free_port, survivors, wait_until_ready, Balance, Fleet, FleetConfig, FleetStore, ScratchDir,
    Started, Supervised,
};
use shop::PART_SIZE;

use client::{Client, Reply};

const BUCKET: &str = "shop-uploads";
/// Short, so that the abandoned upload's expiry is seen within the test; the uploads
/// that complete take a fraction of it.
const EXPIRY_SECS: u64 = 10;
/// The largest a Redis key may be: an upload's record, an ETag, a session.
const KEY_LIMIT: u64 = 16 * 1024;

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "objects: {line}");
}

fn tools_present() -> bool {
    tools::present(
        "objects",
        &[
            ("moto_server", &["moto_server"]),
            ("redis-server", &["redis-server"]),
            ("nginx", &["nginx", "/usr/sbin/nginx"]),
        ],
    )
}

/// moto's S3 server on a free loopback port, stopped on drop.
struct S3Server {
    _process: Supervised,
    port: u16,
}

impl S3Server {
    fn start(dir: &std::path::Path, started: &Started) -> Self {
        let port = free_port(None);
        let mut command = Command::new("moto_server");
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = Supervised::spawn(
            "moto_server",
            command,
            &dir.join("moto.log"),
            Signal::SIGTERM,
            started,
        )
        .expect("moto_server starts");
        assert!(
            wait_until_ready(
                port,
                b"GET / HTTP/1.0\r\n\r\n",
                b"HTTP/1.",
                Duration::from_secs(30)
            ),
            "moto_server answers: see {}",
            dir.join("moto.log").display()
        );
        let server = Self {
            _process: process,
            port,
        };
        let created = server.raw("PUT", &format!("/{BUCKET}"));
        assert!(
            created.starts_with("HTTP/1.1 200") || created.starts_with("HTTP/1.0 200"),
            "{created}"
        );
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain request (moto checks no signature); the whole answer.
    fn raw(&self, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("moto answers");
        answer
    }

    /// The multipart uploads in progress in the bucket (ListMultipartUploads): their IDs.
    fn multipart_uploads(&self) -> Vec<String> {
        let answer = self.raw("GET", &format!("/{BUCKET}?uploads"));
        assert!(answer.contains("ListMultipartUploadsResult"), "{answer}");
        answer
            .split("<UploadId>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</UploadId>").map(|(id, _)| id.to_owned()))
            .collect()
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("UPLOADS_BUCKET", BUCKET.to_owned()),
            ("UPLOADS_EXPIRY", EXPIRY_SECS.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn ok(reply: (Result<Reply, client::Failed>, client::Attempts)) -> Reply {
    reply.0.expect("an answer")
}

/// Every key in Redis and its size in memory: none holds a chunk.
async fn redis_keys(url: &str) -> Vec<(String, u64)> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut sizes = Vec::new();
    for key in keys {
        let size: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("MEMORY USAGE");
        sizes.push((key, size.unwrap_or(0)));
    }
    sizes
}

async fn assert_no_chunk_in_redis(url: &str, when: &str) {
    let keys = redis_keys(url).await;
    let total: u64 = keys.iter().map(|(_, size)| size).sum();
    report(&format!(
        "{when}: {} Redis keys, {total} bytes in all, largest {:?}",
        keys.len(),
        keys.iter().max_by_key(|(_, size)| *size)
    ));
    assert!(!keys.is_empty(), "the sessions are in Redis");
    for (key, size) in &keys {
        assert!(*size < KEY_LIMIT, "{when}: {key} takes {size} bytes");
        assert!(!key.starts_with("shop:chunk:"), "{when}: a chunk key {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_go_to_object_storage_through_any_instance() {
    if !tools_present() {
        return;
    }
    let scratch = ScratchDir::new("objects").expect("scratch directory");
    let started = Started::default();
    let s3 = S3Server::start(scratch.path(), &started);
    let env = s3.env();
    let mut fleet = fleet_on_its_own_redis(3, env).await;
    let outcome = tokio::time::timeout(
        Duration::from_secs(180),
        upload_through_the_fleet(&mut fleet, &s3),
    )
    .await;
    stop_and_check(fleet, s3, &started, outcome);
}

/// A fleet of `instances` on a Redis of its own, with `env`.
async fn fleet_on_its_own_redis(instances: usize, env: Vec<(String, String)>) -> Fleet {
    tokio::task::spawn_blocking(move || {
        Fleet::start(FleetConfig {
            shop_binary: env!("CARGO_BIN_EXE_shop").into(),
            instances,
            store: FleetStore::OwnRedis(Vec::new()),
            port: 0,
            env,
            control: None,
            balance: Balance::RoundRobin,
        })
        .expect("fleet starts")
    })
    .await
    .expect("joined")
}

/// Stops the fleet and the S3 server, then checks that the scenario finished in time and
/// that no process it started is left.
fn stop_and_check<T, E: std::fmt::Debug>(
    fleet: Fleet,
    s3: S3Server,
    started: &Started,
    outcome: Result<T, E>,
) {
    let mut groups = fleet.process_groups();
    drop(fleet);
    drop(s3);
    groups.extend(started.groups());
    outcome.expect("the scenario finished in time");
    let left = survivors(&groups);
    assert!(left.is_empty(), "alive after the test: {left:?}");
}

/// With `SESSION_ENCRYPT=true` the object in the bucket is the sealed parts: none of the
/// uploaded text is there, and the shop still answers the SHA-256 of exactly what was
/// sent, opening the parts as it reads the object back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_session_encrypt_the_object_holds_no_plaintext() {
    if !tools_present() {
        return;
    }
    let scratch = ScratchDir::new("objects").expect("scratch directory");
    let started = Started::default();
    let s3 = S3Server::start(scratch.path(), &started);
    let mut env = s3.env();
    env.push(("SESSION_ENCRYPT".to_owned(), "true".to_owned()));
    let fleet = fleet_on_its_own_redis(2, env).await;
    let outcome = tokio::time::timeout(
        Duration::from_secs(180),
        sealed_upload_through_the_fleet(&fleet, &s3),
    )
    .await;
    stop_and_check(fleet, s3, &started, outcome);
}

async fn sealed_upload_through_the_fleet(fleet: &Fleet, s3: &S3Server) {
    let ports: Vec<u16> = fleet.instances.iter().map(|i| i.port).collect();
    let first = Client::new(ports[0]);
    let login = json!({ "user": "alice" }).to_string().into_bytes();
    let logged_in = ok(first
        .request_retrying("POST", "/login", Some(login), false)
        .await)
    .await;
    assert_eq!(logged_in.status, 200);
    let second = Client::with_cookie(ports[1], first.cookie());
    // Two parts, of text: a run of it left in clear would show.
    let line = b"a line of a confidential upload, easy to spot in a dump;\n";
    let size = PART_SIZE + 777;
    let bytes: Vec<u8> = line.iter().copied().cycle().take(size).collect();
    let declared = json!({ "name": "secret.txt", "size": size })
        .to_string()
        .into_bytes();
    let created = first
        .request("POST", "/uploads", Some(declared))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{:?}", created.json);
    let id = created.json["upload"].as_str().unwrap().to_owned();
    for (n, part) in bytes.chunks(PART_SIZE).enumerate() {
        let client = if n == 0 { &first } else { &second };
        let path = format!("/uploads/{id}/chunks/{n}");
        let reply = client
            .request("PUT", &path, Some(part.to_vec()))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "part {n}: {:?}", reply.json);
    }
    let done = second
        .request("POST", &format!("/uploads/{id}/complete"), None)
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{:?}", done.json);
    assert_eq!(done.json["bytes"], size);
    assert_eq!(done.json["sha256"], hex_sha256(&bytes).as_str());

    let bucket = test_bucket(s3);
    let key = format!("uploads/{id}");
    let stored = bucket
        .get(&Path::from(key.as_str()))
        .await
        .expect("the object")
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.len(), size + 2 * shop::UploadSeal::OVERHEAD);
    // The text repeats every line: any clear run of a line and more holds this window.
    let window = &line[..32];
    assert!(
        !stored.windows(32).any(|w| w == window),
        "the object holds uploaded text"
    );
    report(&format!(
        "sealed upload: {} bytes sent, {} stored, sha256 of what was sent answered",
        size,
        stored.len()
    ));
}

async fn upload_through_the_fleet(fleet: &mut Fleet, s3: &S3Server) {
    let redis_url = fleet.redis.as_ref().expect("the fleet's Redis").url();
    let ports: Vec<u16> = fleet.instances.iter().map(|i| i.port).collect();
    let front = Client::new(fleet.nginx.port());
    let login = json!({ "user": "alice" }).to_string().into_bytes();
    assert_eq!(
        ok(front
            .request_retrying("POST", "/login", Some(login), false)
            .await)
        .await
        .status,
        200
    );
    // The same user (one cookie) speaking to each instance directly.
    let at = |i: usize| Client::with_cookie(ports[i], front.cookie());

    // Three parts: two of 5 MiB and a short last one.
    let size = 2 * PART_SIZE + 777;
    let bytes = random_bytes(size);
    let declared = json!({ "name": "video.bin", "size": size })
        .to_string()
        .into_bytes();
    let created = at(0)
        .request("POST", "/uploads", Some(declared))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(created.json["chunk_size"], PART_SIZE);
    let id = created.json["upload"].as_str().unwrap().to_owned();
    let part = |n: usize| bytes[n * PART_SIZE..((n + 1) * PART_SIZE).min(size)].to_vec();
    let put = |n: usize| format!("/uploads/{id}/chunks/{n}");

    // A part that is not of the part size is refused before it reaches the bucket.
    let short = at(0)
        .request("PUT", &put(0), Some(vec![1u8; 1024]))
        .await
        .unwrap();
    assert_eq!(short.status, 400, "{:?}", short.json);

    let first = at(0).request("PUT", &put(0), Some(part(0))).await.unwrap();
    assert_eq!(
        (first.status, first.instance.as_deref()),
        (200, Some("shop-1"))
    );
    assert_eq!(first.json["received"], json!([0]));

    // Part 1 goes to shop-2, which is killed while it may still be taking it: whether
    // the part got there or not, the client asks another instance what it has, and
    // sends what is missing.
    let to_second = at(1);
    let in_flight = tokio::spawn({
        let body = part(1);
        let path = put(1);
        async move { to_second.request("PUT", &path, Some(body)).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    fleet.instances[1].kill();
    let outcome = in_flight.await.unwrap();
    report(&format!(
        "part 1 to shop-2 killed meanwhile: {:?}",
        outcome.as_ref().map(|reply| reply.status)
    ));
    assert_no_chunk_in_redis(&redis_url, "mid-upload").await;
    let status = at(2)
        .request("GET", &format!("/uploads/{id}"), None)
        .await
        .unwrap();
    assert_eq!(status.status, 200);
    let received: Vec<u64> = serde_json::from_value(status.json["received"].clone()).unwrap();
    for n in 1..3 {
        if !received.contains(&(n as u64)) {
            let reply = at(2).request("PUT", &put(n), Some(part(n))).await.unwrap();
            assert_eq!(
                (reply.status, reply.instance.as_deref()),
                (200, Some("shop-3"))
            );
        }
    }
    let done = at(0)
        .request("POST", &format!("/uploads/{id}/complete"), None)
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{:?}", done.json);
    let key = format!("uploads/{id}");
    assert_eq!(done.json["object_key"], key.as_str());
    assert_eq!(done.json["bytes"], size);
    assert_eq!(done.json["sha256"], hex_sha256(&bytes).as_str());
    let status = at(2)
        .request("GET", &format!("/uploads/{id}"), None)
        .await
        .unwrap();
    assert_eq!(status.json["object_key"], key.as_str(), "{:?}", status.json);
    assert_eq!(status.json["bytes"], size);

    // The object, read from the bucket itself: exactly the bytes. (The shop installs this
    // provider for its own S3 client; this client is the test's.)
    let bucket = test_bucket(s3);
    let stored = bucket
        .get(&Path::from(key.as_str()))
        .await
        .expect("the object")
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.len(), size);
    assert!(
        stored.as_ref() == bytes.as_slice(),
        "the object holds exactly the bytes sent"
    );
    assert_no_chunk_in_redis(&redis_url, "completed").await;
    assert!(
        s3.multipart_uploads().is_empty(),
        "no multipart upload left after completion"
    );

    // An abandoned upload: one part sent, then nothing. After its expiry the sweep aborts
    // it, and its parts are gone from the bucket.
    let declared = json!({ "name": "left.bin", "size": 2 * PART_SIZE })
        .to_string()
        .into_bytes();
    let created = at(2)
        .request("POST", "/uploads", Some(declared))
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let abandoned = created.json["upload"].as_str().unwrap().to_owned();
    let reply = at(0)
        .request(
            "PUT",
            &format!("/uploads/{abandoned}/chunks/0"),
            Some(random_bytes(PART_SIZE)),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        s3.multipart_uploads().len(),
        1,
        "the abandoned upload is in progress"
    );
    let started_at = Instant::now();
    let deadline = started_at + Duration::from_secs(EXPIRY_SECS * 6);
    while !s3.multipart_uploads().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the abandoned upload was never aborted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report(&format!(
        "abandoned upload aborted {:?} after its first part",
        started_at.elapsed()
    ));
    let late = at(0)
        .request(
            "PUT",
            &format!("/uploads/{abandoned}/chunks/1"),
            Some(random_bytes(PART_SIZE)),
        )
        .await
        .unwrap();
    assert_eq!(late.status, 409, "{:?}", late.json);
}

/// The shop's first lines on stdout and stderr with `env`, until `wanted` shows or it
/// exits; stopped after 20 s at most.
fn startup_output(env: &[(&str, &str)], wanted: &str) -> (String, Option<i32>) {
    let port = free_port(None);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("shop starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut code = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            code = status.code();
            break;
        }
        if wait_until_ready(
            port,
            b"GET /healthz HTTP/1.0\r\n\r\n",
            b"HTTP/1.0 200",
            Duration::from_millis(100),
        ) {
            break;
        }
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("shop output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains(wanted), "no {wanted:?} in {text}");
    (text, code)
}

#[test]
fn the_shop_says_where_uploads_go_and_bad_bucket_settings_stop_it() {
    startup_output(
        &[],
        "UPLOADS_BUCKET is not set: upload chunks are kept in this process's memory",
    );
    let (text, code) = startup_output(
        &[
            ("UPLOADS_BUCKET", BUCKET),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ALLOW_HTTP", "maybe"),
            ("AWS_SECRET_ACCESS_KEY", "do-not-print-me"),
        ],
        "UPLOADS_BUCKET",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("shop: UPLOADS_BUCKET: "), "{text}");
    assert!(!text.contains("do-not-print-me"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

/// The test's own client of the S3 server's bucket. (The shop installs this TLS provider
/// for its own S3 client; this client is the test's.)
fn test_bucket(s3: &S3Server) -> object_store::aws::AmazonS3 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap()
}
