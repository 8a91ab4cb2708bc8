//! Loopback ports: finding free ones, and waiting until one answers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (and, with `plus`, `port + plus` free too).
pub fn free_port(plus: Option<u16>) -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let partner_free = plus.is_none_or(|plus| {
            port.checked_add(plus)
                .is_some_and(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok())
        });
        if partner_free {
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// Waits until `127.0.0.1:port` accepts connections and `probe` (a request written to it)
/// gets an answer starting with `expect`.
pub fn wait_until_ready(port: u16, probe: &[u8], expect: &[u8], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut answer = vec![0u8; expect.len()];
            if stream.write_all(probe).is_ok()
                && stream.read_exact(&mut answer).is_ok()
                && answer == expect
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}
