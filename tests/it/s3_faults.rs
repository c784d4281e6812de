//! Throttling, per-key failures and servers without DeleteObjects, through a
//! fault-injecting proxy in front of the test server. Depending on its mode,
//! the proxy answers every third request `503 SlowDown` without forwarding it;
//! answers each DeleteObjects request that names a schema-section key with a
//! per-key error for each of its keys (nothing in it is deleted); or answers
//! every DeleteObjects request `501 NotImplemented`; denies the part copies
//! of a multipart copy after the first; or runs a writer just before the
//! first copy request reaches the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{read_lines, report, stderr, unique_schema, Env, Kind};
use djgc::fixture::FixtureSpec;

#[derive(Default)]
struct Faults {
    /// Answer every third request 503 SlowDown.
    throttle: bool,
    /// Fail every key of DeleteObjects requests naming schema-section keys.
    refuse_schema_batches: bool,
    /// Answer DeleteObjects 501 NotImplemented.
    no_delete_objects: bool,
    /// Answer DeleteObjects, deleting nothing, with an error for a key that
    /// was not asked for.
    foreign_delete_errors: bool,
    /// Mark every listing page truncated, without a continuation token.
    truncated_without_token: bool,
    /// Answer every UploadPartCopy after the first 403 AccessDenied.
    deny_later_part_copies: bool,
    /// Run once, before the first copy request (CopyObject or
    /// UploadPartCopy) is passed on: a writer racing a move.
    before_first_copy: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Run once, before the first DeleteObject of one key is passed on: a
    /// writer racing the end of a move.
    before_first_key_delete: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    requests: AtomicUsize,
    /// UploadPartCopy requests seen.
    part_copies: AtomicUsize,
    throttled: AtomicUsize,
    refused_batches: AtomicUsize,
}

/// Reads one HTTP/1.1 message head and body (Content-Length or chunked);
/// the answer to a HEAD request (`answers_head`) has no body, whatever its
/// Content-Length says.
pub(crate) fn read_message(
    reader: &mut BufReader<TcpStream>,
    answers_head: bool,
) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let header = |name: &str| {
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l[name.len() + 1..].trim().to_string())
    };
    let mut body = Vec::new();
    if answers_head {
        return Some((head, body));
    }
    if let Some(length) = header("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        // Relay the chunked body as it came.
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    }
    Some((head, body))
}

fn respond(client: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
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
            respond(
                &mut writer,
                "503 Slow Down",
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            );
            continue;
        }
        let lower_head = head.to_ascii_lowercase();
        if lower_head.contains("\nx-amz-copy-source:") {
            if let Some(writer) = faults.before_first_copy.lock().unwrap().take() {
                writer();
            }
        }
        let request_line = head.lines().next().unwrap_or("");
        if request_line.starts_with("DELETE ") && !request_line.contains("uploadId=") {
            if let Some(writer) = faults.before_first_key_delete.lock().unwrap().take() {
                writer();
            }
        }
        let part_copy = head.lines().next().unwrap_or("").contains("uploadId=")
            && lower_head.contains("x-amz-copy-source-range:");
        if part_copy
            && faults.part_copies.fetch_add(1, Ordering::Relaxed) > 0
            && faults.deny_later_part_copies
        {
            respond(
                &mut writer,
                "403 Forbidden",
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            );
            continue;
        }
        let text = String::from_utf8_lossy(&body);
        let delete_objects =
            head.starts_with("POST") && head.lines().next().unwrap_or("").contains("?delete");
        if delete_objects && faults.no_delete_objects {
            faults.refused_batches.fetch_add(1, Ordering::Relaxed);
            respond(
                &mut writer,
                "501 Not Implemented",
                "<Error><Code>NotImplemented</Code><Message>not implemented</Message></Error>",
            );
            continue;
        }
        if delete_objects && faults.refuse_schema_batches && text.contains("/_schema/") {
            faults.refused_batches.fetch_add(1, Ordering::Relaxed);
            let errors: String = text
                .split("<Key>")
                .skip(1)
                .filter_map(|rest| rest.split("</Key>").next())
                .map(|key| format!("<Error><Key>{key}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"))
                .collect();
            respond(
                &mut writer,
                "200 OK",
                &format!("<DeleteResult>{errors}</DeleteResult>"),
            );
            continue;
        }
        if delete_objects && faults.foreign_delete_errors {
            faults.refused_batches.fetch_add(1, Ordering::Relaxed);
            respond(
                &mut writer,
                "200 OK",
                "<DeleteResult><Error><Key>not/one/of/yours</Key><Code>InternalError</Code>\
                 <Message>We encountered an internal error.</Message></Error></DeleteResult>",
            );
            continue;
        }
        server.write_all(head.as_bytes()).unwrap();
        server.write_all(&body).unwrap();
        let Some((response_head, response_body)) =
            read_message(&mut from_server, head.starts_with("HEAD "))
        else {
            return;
        };
        let listing = head.starts_with("GET") && head.contains("list-type=2");
        if listing && faults.truncated_without_token {
            let page = String::from_utf8_lossy(&response_body).replace(
                "<IsTruncated>false</IsTruncated>",
                "<IsTruncated>true</IsTruncated>",
            );
            let page = match (
                page.find("<NextContinuationToken>"),
                page.find("</NextContinuationToken>"),
            ) {
                (Some(start), Some(end)) => {
                    format!(
                        "{}{}",
                        &page[..start],
                        &page[end + "</NextContinuationToken>".len()..]
                    )
                }
                _ => page,
            };
            respond(&mut writer, "200 OK", &page);
            continue;
        }
        writer.write_all(response_head.as_bytes()).unwrap();
        writer.write_all(&response_body).unwrap();
    }
}

/// Starts a proxy with these faults and points the store of the
/// `datajoint.json` at `config` to it.
fn through_proxy(config: &std::path::Path, faults: Faults) -> Arc<Faults> {
    let faults = Arc::new(faults);
    let proxy = start_proxy(faults.clone());
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace(crate::common::S3_ENDPOINT, &proxy);
    std::fs::write(config, text).unwrap();
    faults
}

/// Starts the proxy; returns its address.
fn start_proxy(faults: Arc<Faults>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let faults = faults.clone();
            std::thread::spawn(move || serve(client, crate::common::S3_ENDPOINT, &faults));
        }
    });
    address
}

#[test]
fn throttling_is_retried_and_failed_keys_are_reported_with_exit_1() {
    let mut env = Env::with_store(djgc::config::Backend::MySql, Kind::S3);
    let schema = unique_schema("faults");
    let mut spec = FixtureSpec::small(&schema, "main");
    spec.subfolding = Some(vec![2, 2]);
    let truth = env.fixture(&spec);
    env.put("datajoint_store.json", "{}");
    let config = env.write_config(spec.subfolding.as_deref());

    let faults = through_proxy(
        &config,
        Faults {
            throttle: true,
            refuse_schema_batches: true,
            ..Faults::default()
        },
    );

    let listed = env.dir.path().join("orphans.txt");
    let r = env.djgc_ok(&[
        "scan",
        &schema,
        "--min-age",
        "0s",
        "--json",
        "--list-concurrency",
        "8",
        "--orphans-out",
        listed.to_str().unwrap(),
    ]);
    assert_eq!(read_lines(&listed), truth.orphans, "listing through 503s");
    assert_eq!(r["scan_errors"].as_array().unwrap().len(), 0);
    assert!(
        faults.throttled.load(Ordering::Relaxed) > 0,
        "no request was throttled"
    );

    let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--json", "--delete"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = report(&out);
    let (hash_orphans, schema_orphans): (Vec<&String>, Vec<&String>) =
        truth.orphans.iter().partition(|k| k.starts_with("_hash/"));
    assert!(!hash_orphans.is_empty() && !schema_orphans.is_empty());
    assert!(faults.refused_batches.load(Ordering::Relaxed) > 0);
    assert_eq!(r["errors"], schema_orphans.len());
    assert_eq!(r["deleted"], hash_orphans.len());
    assert_eq!(r["hash_paths_deleted"], hash_orphans.len());
    let err = stderr(&out);
    assert!(
        schema_orphans
            .iter()
            .all(|k| err.contains(&format!("failed to delete {k}"))),
        "{err}"
    );
    // A denial names the key, the operation, and where the credentials came from.
    assert!(
        err.contains("access denied: check the credentials (from access_key/secret_key of the DataJoint store config)"),
        "{err}"
    );

    let mut expected: Vec<String> = truth.live_files.clone();
    expected.extend(schema_orphans.into_iter().cloned());
    expected.push("datajoint_store.json".to_string());
    expected.sort();
    assert_eq!(env.keys(), expected);
}

#[test]
fn a_server_without_delete_objects_gets_single_key_deletes() {
    let mut env = Env::with_store(djgc::config::Backend::PostgreSql, Kind::S3);
    let schema = unique_schema("nobatch");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    let config = env.write_config(None);
    let faults = through_proxy(
        &config,
        Faults {
            no_delete_objects: true,
            ..Faults::default()
        },
    );

    let r = env.djgc_ok(&["collect", &schema, "--min-age", "0s", "--json", "--delete"]);
    assert_eq!(r["deleted"], truth.orphans.len());
    assert_eq!(r["errors"], 0);
    assert!(
        faults.refused_batches.load(Ordering::Relaxed) > 0,
        "DeleteObjects was not tried"
    );
    assert_eq!(env.keys(), truth.live_files);
}

/// A DeleteObjects answer that names a key djgc did not send tells nothing
/// about the keys it did send: none of them counts as deleted.
#[test]
fn a_delete_answer_about_other_keys_deletes_nothing_on_paper() {
    let mut env = Env::with_store(djgc::config::Backend::MySql, Kind::S3);
    let schema = unique_schema("foreign");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    let config = env.write_config(None);
    let faults = through_proxy(
        &config,
        Faults {
            foreign_delete_errors: true,
            ..Faults::default()
        },
    );
    let before = env.keys();
    let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--json", "--delete"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = report(&out);
    assert!(faults.refused_batches.load(Ordering::Relaxed) > 0);
    assert_eq!(r["deleted"], 0, "{r}");
    assert_eq!(r["errors"], truth.orphans.len(), "{r}");
    assert_eq!(env.keys(), before);
}

/// A listing page marked truncated without a continuation token cannot be
/// continued: the listing is incomplete, so nothing may be judged from it.
#[test]
fn a_truncated_page_without_a_token_blocks_the_scan() {
    let mut env = Env::with_store(djgc::config::Backend::MySql, Kind::S3);
    let schema = unique_schema("notoken");
    env.fixture(&FixtureSpec::small(&schema, "main"));
    let config = env.write_config(None);
    through_proxy(
        &config,
        Faults {
            truncated_without_token: true,
            ..Faults::default()
        },
    );
    let before = env.keys();
    let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--json", "--delete"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("continuation"), "{}", stderr(&out));
    assert_eq!(env.keys(), before);
}

#[test]
fn failures_carry_their_kind() {
    let faults = Arc::new(Faults {
        refuse_schema_batches: true,
        ..Faults::default()
    });
    let proxy = start_proxy(faults.clone());
    let location = unique_schema("kinds");
    let spec = crate::common::s3_spec(&location, &proxy, crate::common::S3_SECRET_KEY);
    let store = djgc::store::S3Store::open(&spec, 4).unwrap();
    use djgc::store::{Store, StoreErrorKind};
    let keys = ["_schema/s/t/id=1/f".to_string()];
    let refused = store.delete("_schema/s/", &keys);
    let error = refused[0].as_ref().unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::AccessDenied, "{error}");

    // A wrong secret: every request is denied (HeadBucket at open says so).
    let wrong = crate::common::s3_spec(&location, crate::common::S3_ENDPOINT, "not-the-secret");
    let denied = djgc::store::S3Store::open(&wrong, 4).err().unwrap();
    assert!(denied.to_string().contains("access denied"), "{denied}");
}

/// An S3 store through a proxy with these faults, copying objects above
/// 5 MiB in parts of 5 MiB; and an object of three such parts in it.
fn store_with_a_large_object(faults: Faults) -> (djgc::store::S3Store, Arc<Faults>, Vec<u8>) {
    store_with_a_large_object_at(&unique_schema("parts"), faults)
}

/// As [`store_with_a_large_object`], at this store location.
fn store_with_a_large_object_at(
    location: &str,
    faults: Faults,
) -> (djgc::store::S3Store, Arc<Faults>, Vec<u8>) {
    let faults = Arc::new(faults);
    let proxy = start_proxy(faults.clone());
    let spec = crate::common::s3_spec(location, &proxy, crate::common::S3_SECRET_KEY);
    let store = djgc::store::S3Store::open(&spec, 4)
        .unwrap()
        .with_copy_part_size(5 << 20);
    let large: Vec<u8> = (0..(11u32 << 20) + 7).map(|i| (i % 251) as u8).collect();
    use djgc::store::Store;
    store.put("_schema/s/t/id=1/large", large.clone()).unwrap();
    store
        .put("_schema/s/t/id=2/small", b"small".to_vec())
        .unwrap();
    (store, faults, large)
}

#[test]
fn objects_above_the_copy_limit_move_in_parts() {
    use djgc::store::{Moved, Store};
    let (store, faults, large) = store_with_a_large_object(Faults::default());
    let moves = [
        ("_schema/s/t/id=1/large", "_trash/r/_schema/s/t/id=1/large"),
        ("_schema/s/t/id=2/small", "_trash/r/_schema/s/t/id=2/small"),
    ]
    .map(|(from, to)| (from.to_string(), to.to_string()));
    let outcomes = store.rename("_schema/s/", &moves);
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_ref().ok() == Some(&Moved::Done)),
        "{outcomes:?}"
    );
    // 11 MiB + 7 bytes in parts of 5 MiB; the small object in one request.
    assert_eq!(faults.part_copies.load(Ordering::Relaxed), 3);
    let moved = store.get("_trash/r/_schema/s/t/id=1/large").unwrap();
    assert!(
        moved.as_deref() == Some(&large[..]),
        "the moved object differs"
    );
    assert_eq!(
        store
            .get("_trash/r/_schema/s/t/id=2/small")
            .unwrap()
            .as_deref(),
        Some(&b"small"[..])
    );
    assert_eq!(store.get("_schema/s/t/id=1/large").unwrap(), None);
    assert_eq!(store.get("_schema/s/t/id=2/small").unwrap(), None);
}

#[test]
fn a_failed_part_copy_leaves_the_source_and_no_target() {
    use djgc::store::Store;
    let (store, faults, large) = store_with_a_large_object(Faults {
        deny_later_part_copies: true,
        ..Faults::default()
    });
    let moves = [(
        "_schema/s/t/id=1/large".to_string(),
        "_trash/r/_schema/s/t/id=1/large".to_string(),
    )];
    let outcomes = store.rename("_schema/s/", &moves);
    let error = outcomes[0].as_ref().unwrap_err();
    assert!(error.to_string().contains("denied"), "{error}");
    assert!(faults.part_copies.load(Ordering::Relaxed) >= 2);
    let kept = store.get("_schema/s/t/id=1/large").unwrap();
    assert!(kept.as_deref() == Some(&large[..]), "the source changed");
    assert_eq!(store.get("_trash/r/_schema/s/t/id=1/large").unwrap(), None);
}

#[test]
fn a_source_rewritten_after_the_move_looked_is_not_moved() {
    use djgc::store::Store;
    // CopyObject for the small object, UploadPartCopy for the large one,
    // rewritten at its own size so that every part range stays valid.
    let large_again: Vec<u8> = (0..(11u32 << 20) + 7).map(|i| (i % 13) as u8).collect();
    for (key, again) in [
        ("_schema/s/t/id=2/small", b"written again".to_vec()),
        ("_schema/s/t/id=1/large", large_again),
    ] {
        let location = unique_schema("rewritten");
        // The writer goes straight to the server, not through the proxy.
        let direct = crate::common::s3_spec(
            &location,
            crate::common::S3_ENDPOINT,
            crate::common::S3_SECRET_KEY,
        );
        let writer = djgc::store::S3Store::open(&direct, 1).unwrap();
        let written = again.clone();
        let rewrite: Box<dyn FnOnce() + Send> = Box::new(move || writer.put(key, written).unwrap());
        let (store, _faults, _) = store_with_a_large_object_at(
            &location,
            Faults {
                before_first_copy: Mutex::new(Some(rewrite)),
                ..Faults::default()
            },
        );
        let target = format!("_trash/r/{key}");
        let outcomes = store.rename("_schema/s/", &[(key.to_string(), target.clone())]);
        assert!(outcomes[0].is_err(), "{key}: {outcomes:?}");
        assert!(
            store.get(key).unwrap() == Some(again),
            "{key}: the new version was moved or deleted"
        );
        assert_eq!(store.get(&target).unwrap(), None, "{key}");
    }
}

/// A writer replaces the source after it was copied, just before the move
/// deletes it: the delete is pinned to the version copied, so the new
/// version stays where it is and the stale copy is taken back.
#[test]
fn a_source_rewritten_between_its_copy_and_its_delete_stays() {
    use djgc::store::Store;
    let key = "_schema/s/t/id=2/small";
    let location = unique_schema("rewritten-late");
    let direct = crate::common::s3_spec(
        &location,
        crate::common::S3_ENDPOINT,
        crate::common::S3_SECRET_KEY,
    );
    let writer = djgc::store::S3Store::open(&direct, 1).unwrap();
    let rewrite: Box<dyn FnOnce() + Send> =
        Box::new(move || writer.put(key, b"written again".to_vec()).unwrap());
    let (store, _faults, _) = store_with_a_large_object_at(
        &location,
        Faults {
            before_first_key_delete: Mutex::new(Some(rewrite)),
            ..Faults::default()
        },
    );
    let target = format!("_trash/r/{key}");
    let outcomes = store.rename("_schema/s/", &[(key.to_string(), target.clone())]);
    let error = outcomes[0].as_ref().unwrap_err().to_string();
    assert!(error.contains("written again"), "{error}");
    assert_eq!(
        store.get(key).unwrap().as_deref(),
        Some(&b"written again"[..]),
        "the new version was deleted"
    );
    assert_eq!(store.get(&target).unwrap(), None);
}

/// `boto3`-style requests straight to the S3 server (not through the
/// proxy), from the compatibility environment's Python: what DataJoint's
/// clients can set on an object that djgc's own `put` does not.
fn botocore(script: &str, args: &[&str]) -> String {
    let setup = format!(
        "import json, sys, botocore.session\n\
         s3 = botocore.session.get_session().create_client('s3', \
         endpoint_url='http://{}', aws_access_key_id='{}', aws_secret_access_key='{}', \
         region_name='us-east-1')\n\
         bucket = '{}'\n",
        crate::common::S3_ENDPOINT,
        crate::common::S3_ACCESS_KEY,
        crate::common::S3_SECRET_KEY,
        crate::common::S3_BUCKET,
    );
    let out = std::process::Command::new(crate::common::python())
        .arg("-c")
        .arg(format!("{setup}{script}"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// An object copied in parts keeps what CopyObject keeps: its content
/// headers and user metadata (a restore must give back the object whole).
#[test]
fn a_copy_in_parts_keeps_the_headers_and_metadata() {
    use djgc::store::Store;
    let location = unique_schema("metadata");
    let (store, faults, large) = store_with_a_large_object_at(&location, Faults::default());
    let key = "_schema/s/t/id=1/large";
    let body = std::env::temp_dir().join(format!("{location}.body"));
    std::fs::write(&body, &large).unwrap();
    botocore(
        "s3.put_object(Bucket=bucket, Key=sys.argv[1], Body=open(sys.argv[2], 'rb').read(), \
         ContentType='application/x-npy', ContentDisposition='attachment; filename=\"a.npy\"', \
         CacheControl='no-cache', Metadata={'djgc-test': 'kept'})",
        &[&format!("{location}/{key}"), body.to_str().unwrap()],
    );
    std::fs::remove_file(&body).unwrap();
    let target = format!("_trash/r/{key}");
    let outcomes = store.rename("_schema/s/", &[(key.to_string(), target.clone())]);
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert!(faults.part_copies.load(Ordering::Relaxed) >= 3);
    let head = botocore(
        "h = s3.head_object(Bucket=bucket, Key=sys.argv[1])\n\
         print(json.dumps([h.get(k) for k in \
         ('ContentType', 'ContentDisposition', 'CacheControl', 'Metadata', 'ContentLength')]))",
        &[&format!("{location}/{target}")],
    );
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(
        head,
        serde_json::json!([
            "application/x-npy",
            "attachment; filename=\"a.npy\"",
            "no-cache",
            {"djgc-test": "kept"},
            large.len()
        ])
    );
}
