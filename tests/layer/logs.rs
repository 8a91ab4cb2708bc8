//! Capturing what the layer logs through `tracing`, to check its warnings and that
//! they never carry a token or a value.
//!
//! One subscriber serves the whole test binary, installed once as the global default,
//! and writes each event into the capture of the thread that emitted it. Scoped
//! subscribers (one per test) were flaky: tracing caches each callsite's interest
//! process-wide, and a test whose subscriber was set up while another test's was being
//! dropped could find its callsite switched off and capture nothing.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::fmt::MakeWriter;

/// Everything logged while a future ran, as plain text lines.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    /// The capture events of this thread go to, if any.
    static CAPTURE: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

impl Logs {
    /// Runs `future` and returns what was logged on this thread meanwhile (other tests
    /// run on other threads and are not captured). Tests are `#[tokio::test]`s on a
    /// current-thread runtime, so their tasks all run on the test's thread.
    pub async fn capture<T>(future: impl Future<Output = T>) -> (T, Logs) {
        static SUBSCRIBER: Once = Once::new();
        SUBSCRIBER.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(ThreadCapture)
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the layer tests");
        });
        let logs = Logs::default();
        let previous = CAPTURE.with(|capture| capture.replace(Some(logs.clone())));
        let output = future.await;
        CAPTURE.with(|capture| *capture.borrow_mut() = previous);
        (output, logs)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines holding `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// The global subscriber's writer: the current thread's capture, or nowhere.
struct ThreadCapture;

impl io::Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(logs) = capture.borrow().as_ref() {
                logs.0.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = ThreadCapture;

    fn make_writer(&'a self) -> ThreadCapture {
        ThreadCapture
    }
}
