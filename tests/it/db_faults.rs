//! The database connection cut while references are being read: nothing may
//! be deleted, and the run must end with exit code 3. A TCP proxy in front of
//! the real server closes each connection after it has passed a set number
//! of bytes from the server, which lands in the middle of streaming a table.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{stderr, unique_schema, Env, BACKENDS};
use djgc::config::Backend;
use djgc::fixture::FixtureSpec;

/// Bytes a connection may carry from the server before the proxy cuts it.
const CUT_AFTER: usize = 100_000;

/// Starts a proxy to `upstream`; returns its port and the number of cuts.
fn start_cutting_proxy(upstream: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cuts = Arc::new(AtomicUsize::new(0));
    let counter = cuts.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
            });
            let counter = counter.clone();
            std::thread::spawn(move || {
                let (mut from_server, mut to_client) = (server, client);
                let mut passed = 0;
                let mut buffer = [0u8; 8192];
                while let Ok(n) = from_server.read(&mut buffer) {
                    if n == 0 || to_client.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                    passed += n;
                    if passed > CUT_AFTER {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let _ = to_client.shutdown(Shutdown::Both);
                        let _ = from_server.shutdown(Shutdown::Both);
                        return;
                    }
                }
            });
        }
    });
    (port, cuts)
}

#[test]
fn a_connection_cut_during_the_reference_scan_deletes_nothing() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("dbcut");
        let mut spec = FixtureSpec::small(&schema, "main");
        spec.hash_rows = 3000;
        spec.rows_per_content = 1;
        let truth = env.fixture(&spec);
        assert!(!truth.orphans.is_empty());
        let config = env.write_config(None);
        let port = match backend {
            Backend::MySql => 3306,
            Backend::PostgreSql => 5432,
        };
        let (proxy_port, cuts) = start_cutting_proxy(port);
        let text = std::fs::read_to_string(&config).unwrap().replace(
            &format!("\"port\": {port}"),
            &format!("\"port\": {proxy_port}"),
        );
        std::fs::write(&config, text).unwrap();

        let before = env.keys();
        let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--json"]);
        assert!(
            cuts.load(Ordering::Relaxed) > 0,
            "{backend:?}: the proxy never cut"
        );
        assert_eq!(out.status.code(), Some(3), "{backend:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&schema),
            "{backend:?}: {}",
            stderr(&out)
        );
        assert_eq!(env.keys(), before, "{backend:?}: something was deleted");
    }
}
