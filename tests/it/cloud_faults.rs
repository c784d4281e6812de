//! Throttling and incomplete batch answers on the GCS and Azure stores,
//! through a fault-injecting proxy in front of each emulator. Depending on
//! its mode, the proxy answers every third request `503` without forwarding
//! it, or takes the first answer out of every batch answer (that delete
//! happened on the server, but the answer no longer says so).

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use djgc::store::{AzureStore, Deleted, GcsStore, Store};
use rayon::prelude::*;

use crate::common::{
    azure_spec, clear_store, gcs_spec, store_keys, unique_schema, AZURE_CONNECTION, GCS_EMULATOR,
};
use crate::s3_faults::read_message;

#[derive(Default)]
struct Faults {
    /// Answer every third request 503.
    throttle: bool,
    /// Take the first part out of every batch answer.
    drop_first_answer: bool,
    requests: AtomicUsize,
    throttled: AtomicUsize,
    dropped: AtomicUsize,
}

/// A body as it came, without chunked transfer coding.
fn unchunked(head: &str, body: Vec<u8>) -> Vec<u8> {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body;
    }
    let mut plain = Vec::new();
    let mut rest = &body[..];
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&rest[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return plain;
        }
        plain.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The batch answer `body` (its head `head`) without its first part.
fn without_first_part(head: &str, body: &[u8]) -> Vec<u8> {
    let boundary = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .and_then(|l| l.split("boundary=").nth(1))
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string();
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    let mut parts: Vec<&str> = text.split(delimiter.as_str()).collect();
    assert!(parts.len() > 2, "a batch answer with parts: {text}");
    parts.remove(1);
    parts.join(delimiter.as_str()).into_bytes()
}

fn serve(client: TcpStream, upstream: &str, faults: &Faults) {
    let mut server = TcpStream::connect(upstream).unwrap();
    let mut from_server = BufReader::new(server.try_clone().unwrap());
    let mut writer = client.try_clone().unwrap();
    let mut from_client = BufReader::new(client);
    while let Some((head, body)) = read_message(&mut from_client, false) {
        let n = faults.requests.fetch_add(1, Ordering::Relaxed);
        if faults.throttle && n % 3 == 2 {
            faults.throttled.fetch_add(1, Ordering::Relaxed);
            let _ = write!(
                writer,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
            );
            continue;
        }
        let batch = head.starts_with("POST")
            && (head.contains("/batch/storage/v1") || head.contains("comp=batch"));
        server.write_all(head.as_bytes()).unwrap();
        server.write_all(&body).unwrap();
        let Some((answer_head, answer_body)) =
            read_message(&mut from_server, head.starts_with("HEAD "))
        else {
            return;
        };
        if batch && faults.drop_first_answer && answer_head.contains(" 20") {
            faults.dropped.fetch_add(1, Ordering::Relaxed);
            let body = without_first_part(&answer_head, &unchunked(&answer_head, answer_body));
            let kept: String = answer_head
                .split("\r\n")
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    !l.starts_with("transfer-encoding:") && !l.starts_with("content-length:")
                })
                .filter(|l| !l.is_empty())
                .map(|l| format!("{l}\r\n"))
                .collect();
            let _ = write!(writer, "{kept}Content-Length: {}\r\n\r\n", body.len());
            let _ = writer.write_all(&body);
            continue;
        }
        writer.write_all(answer_head.as_bytes()).unwrap();
        writer.write_all(&answer_body).unwrap();
    }
}

/// Starts a proxy with these faults in front of `upstream`; its address.
fn start_proxy(upstream: &'static str, faults: Arc<Faults>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let faults = faults.clone();
            std::thread::spawn(move || serve(client, upstream, &faults));
        }
    });
    address
}

/// One cloud store at a location, reached directly and through the proxy.
struct Pair {
    name: &'static str,
    direct: Box<dyn Store>,
    slow: Box<dyn Store>,
    /// The proxy's counters.
    faults: Arc<Faults>,
}

/// Each cloud store at `location`, directly and through a proxy with `faults`.
fn stores(location: &str, faults: Faults) -> Vec<Pair> {
    let faults = Arc::new(faults);
    let gcs_proxy = start_proxy("127.0.0.1:4443", faults.clone());
    let mut slow_gcs = gcs_spec(location);
    slow_gcs.gcs.as_mut().unwrap().emulator = Some(format!("http://{gcs_proxy}"));
    let azure_proxy = start_proxy("127.0.0.1:10000", faults.clone());
    let mut slow_azure = azure_spec(location);
    slow_azure.azure.as_mut().unwrap().connection_string = Some(djgc::config::Secret::new(
        AZURE_CONNECTION.replace("127.0.0.1:10000", &azure_proxy),
    ));
    assert!(GCS_EMULATOR.ends_with(":4443"));
    vec![
        Pair {
            name: "gcs",
            direct: Box::new(GcsStore::open(&gcs_spec(location), 8).unwrap()),
            slow: Box::new(GcsStore::open(&slow_gcs, 8).unwrap()),
            faults: faults.clone(),
        },
        Pair {
            name: "azure",
            direct: Box::new(AzureStore::open(&azure_spec(location), 8).unwrap()),
            slow: Box::new(AzureStore::open(&slow_azure, 8).unwrap().with_page_size(50)),
            faults,
        },
    ]
}

#[test]
fn throttled_requests_are_retried_until_every_key_is_listed_and_deleted() {
    let location = format!("t/{}", unique_schema("cloud_throttle"));
    let faults = Faults {
        throttle: true,
        ..Faults::default()
    };
    for Pair {
        name,
        direct,
        slow,
        faults,
    } in stores(&location, faults)
    {
        let keys: Vec<String> = (0..150)
            .map(|i| format!("_schema/s/t/id={}/f_{i}", i % 7))
            .collect();
        keys.par_iter()
            .for_each(|key| direct.put(key, b"x".to_vec()).unwrap());
        let throttled_before = faults.throttled.load(Ordering::Relaxed);
        let mut listed = store_keys(slow.as_ref(), "_schema/s/");
        listed.dedup();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(listed, expected, "{name}: listing through 503s");
        let outcomes = slow.delete("_schema/s/", &keys);
        assert!(
            outcomes.iter().all(|o| matches!(o, Ok(Deleted::Removed))),
            "{name}: {:?}",
            outcomes.iter().find(|o| o.is_err())
        );
        assert!(
            faults.throttled.load(Ordering::Relaxed) > throttled_before,
            "{name}: no request was throttled"
        );
        assert!(store_keys(direct.as_ref(), "").is_empty(), "{name}");
    }
}

#[test]
fn a_key_a_batch_answer_leaves_out_is_a_failure_not_a_deletion() {
    let location = format!("t/{}", unique_schema("cloud_unanswered"));
    let faults = Faults {
        drop_first_answer: true,
        ..Faults::default()
    };
    for Pair {
        name,
        direct,
        slow,
        faults,
    } in stores(&location, faults)
    {
        let keys: Vec<String> = (0..10).map(|i| format!("_hash/s/k{i:02}")).collect();
        keys.par_iter()
            .for_each(|key| direct.put(key, b"x".to_vec()).unwrap());
        let dropped_before = faults.dropped.load(Ordering::Relaxed);
        let outcomes = slow.delete("_hash/s/", &keys);
        assert!(
            faults.dropped.load(Ordering::Relaxed) > dropped_before,
            "{name}"
        );
        let error = outcomes[0].as_ref().unwrap_err().to_string();
        assert!(error.contains("does not say"), "{name}: {error}");
        assert!(
            outcomes[1..]
                .iter()
                .all(|o| matches!(o, Ok(Deleted::Removed))),
            "{name}: {outcomes:?}"
        );
        // The server did delete it: the answer only left it out. What
        // matters is that djgc did not count it.
        clear_store(direct.as_ref());
    }
}
