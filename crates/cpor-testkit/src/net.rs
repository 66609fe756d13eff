//! Ports for the servers a test starts.

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that nothing listens on at the time of the call
/// (the OS picks it; it is released before the caller binds it).
///
/// # Panics
///
/// When no port can be bound: the machine is out of ports.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}
