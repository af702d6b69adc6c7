//! A TCP relay on loopback that can be cut: the network between this server
//! and a process it calls (Synapse), going down and coming back while both
//! keep running. While cut, new connections are accepted and closed at once
//! (the caller sees a reset or an empty answer) and open ones are closed.

use std::io::copy;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct Relay {
    port: u16,
    state: Arc<State>,
}

struct State {
    up: AtomicBool,
    /// Connections closed because the relay was cut.
    refused: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Relays `127.0.0.1:<port of the relay>` to `127.0.0.1:target_port`; up.
    pub fn start(target_port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            up: AtomicBool::new(true),
            refused: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !shared.up.load(Ordering::SeqCst) {
                    shared.refused.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                if let Ok(mut open) = shared.open.lock() {
                    open.extend(client.try_clone().ok());
                    open.extend(upstream.try_clone().ok());
                }
                pipe(client.try_clone(), upstream.try_clone());
                pipe(Ok(upstream), Ok(client));
            }
        });
        Relay { port, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts the relay (`false`: closes every open connection too) or mends it.
    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
        if !up {
            for stream in self.state.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// How many connections were closed because the relay was cut.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }
}

fn pipe(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    thread::spawn(move || {
        let _ = copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
