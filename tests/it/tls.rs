//! Connecting wherever DataJoint connects (issue 14), against the servers
//! `scripts/services.sh` starts: a MariaDB and a PostgreSQL cluster that
//! require TLS (127.0.0.1:3307, :5433, certificates from a test CA for
//! 127.0.0.1 only), servers that offer none (MariaDB :3308, PostgreSQL
//! :5434), and the passwordless account of DataJoint's default set-up. Each case is a `djgc scan` with
//! the `datajoint.json` a DataJoint user has.

use std::path::PathBuf;
use std::process::Output;

use crate::common::{database_config, djgc_command, stderr, unique_schema, Env, Kind};
use djgc::config::{Backend, DatabaseConfig, Secret, Tls};
use djgc::fixture::FixtureSpec;
use serde_json::Value;

/// The test CA and the one that signed nothing these servers use.
fn ca(name: &str) -> PathBuf {
    let tools = std::env::var_os("DJGC_TOOLS").map_or("/var/lib/djgc".into(), PathBuf::from);
    tools.join("tls").join(format!("{name}.crt"))
}

/// The account `djgc`/`djgc` on the server at `port`, over TLS when the
/// server requires it.
fn server(backend: Backend, port: u16) -> DatabaseConfig {
    DatabaseConfig {
        port,
        tls: Tls::PREFER,
        ..database_config(backend)
    }
}

/// An env on `database` with a fixture schema and its `datajoint.json`.
fn env_with_schema(database: DatabaseConfig, label: &str) -> (Env, String) {
    let mut env = Env::on(database, Kind::File);
    let schema = unique_schema(label);
    env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    (env, schema)
}

/// `djgc scan SCHEMA` with `database.use_tls` set to `use_tls` (left out
/// for `None`) and the given environment.
fn scan(env: &Env, schema: &str, use_tls: Option<Value>, vars: &[(&str, &str)]) -> Output {
    let path = env.dir.path().join("datajoint.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let database = config["database"].as_object_mut().unwrap();
    match use_tls {
        Some(value) => database.insert("use_tls".into(), value),
        None => database.remove("use_tls"),
    };
    std::fs::write(&path, config.to_string()).unwrap();
    djgc_command(
        env.dir.path(),
        &["scan", schema, "--min-age", "0s", "--json"],
    )
    .envs(vars.iter().copied())
    .output()
    .unwrap()
}

fn exit(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn an_empty_password_is_no_password() {
    let passwordless = DatabaseConfig {
        user: Some("djgc_nopw".into()),
        password: Some(Secret::new("")),
        ..database_config(Backend::MySql)
    };
    let (env, schema) = env_with_schema(passwordless, "nopw");
    let text = std::fs::read_to_string(env.dir.path().join("datajoint.json")).unwrap();
    assert!(text.contains(r#""password": """#), "{text}");
    let out = scan(&env, &schema, None, &[]);
    assert_eq!(exit(&out), Some(0), "{}", stderr(&out));
}

/// A server that requires TLS: reached with `use_tls` left out (TLS tried)
/// or `true`, refused with `false`; with `DJGC_TLS_CA` (or `--tls-ca`) its
/// certificate is verified, and one from another CA is refused by name.
#[test]
fn servers_that_require_tls_are_reached_and_verified() {
    for (backend, port) in [(Backend::MySql, 3307), (Backend::PostgreSql, 5433)] {
        let what = format!("{backend:?} :{port}");
        let (env, schema) = env_with_schema(server(backend, port), "tlsonly");
        for use_tls in [None, Some(Value::Bool(true))] {
            let out = scan(&env, &schema, use_tls.clone(), &[]);
            assert_eq!(exit(&out), Some(0), "{what} {use_tls:?}: {}", stderr(&out));
        }
        let out = scan(&env, &schema, Some(Value::Bool(false)), &[]);
        assert_eq!(exit(&out), Some(3), "{what} false: {}", stderr(&out));
        // Refused by the server: MariaDB denies a REQUIRE SSL account over
        // plaintext, PostgreSQL has no line for it.
        let told = stderr(&out);
        assert!(
            told.contains("TLS off")
                && (told.contains("Access denied") || told.contains("no encryption")),
            "{what}: {told}"
        );

        let right = ca("ca");
        let out = scan(
            &env,
            &schema,
            None,
            &[("DJGC_TLS_CA", right.to_str().unwrap())],
        );
        assert_eq!(exit(&out), Some(0), "{what} right CA: {}", stderr(&out));
        let flag = djgc_command(
            env.dir.path(),
            &[
                "scan",
                &schema,
                "--min-age",
                "0s",
                "--tls-ca",
                right.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
        assert_eq!(exit(&flag), Some(0), "{what} --tls-ca: {}", stderr(&flag));

        let other = ca("other-ca");
        let out = scan(
            &env,
            &schema,
            None,
            &[("DJGC_TLS_CA", other.to_str().unwrap())],
        );
        assert_eq!(exit(&out), Some(3), "{what} other CA: {}", stderr(&out));
        let told = stderr(&out);
        for named in [
            &format!("127.0.0.1:{port}"),
            other.to_str().unwrap(),
            "certificate",
        ] {
            assert!(told.contains(named), "{what}: {named} not in {told}");
        }

        // The host name is checked too: the certificate names 127.0.0.1,
        // not "localhost", though both reach this server.
        let path = env.dir.path().join("datajoint.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"127.0.0.1\"", "\"localhost\"")).unwrap();
        let out = scan(
            &env,
            &schema,
            None,
            &[("DJGC_TLS_CA", right.to_str().unwrap())],
        );
        assert_eq!(
            exit(&out),
            Some(3),
            "{what} by another name: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("certificate"),
            "{what}: {}",
            stderr(&out)
        );
        // Skipping that check cannot be honoured, so it is refused.
        let unchecked = serde_json::json!({"ca": right, "check_hostname": false});
        let out = scan(&env, &schema, Some(unchecked), &[]);
        assert_eq!(
            exit(&out),
            Some(2),
            "{what} check_hostname false: {}",
            stderr(&out)
        );
    }
}

/// A server that offers no TLS: `use_tls: true` must fail, never fall back
/// to plaintext; left out or `false`, it connects in plaintext.
#[test]
fn use_tls_true_never_falls_back_to_plaintext() {
    for (backend, port) in [(Backend::MySql, 3308), (Backend::PostgreSql, 5434)] {
        let what = format!("{backend:?} :{port}");
        let (env, schema) = env_with_schema(server(backend, port), "plain");
        let out = scan(&env, &schema, Some(Value::Bool(true)), &[]);
        assert_eq!(exit(&out), Some(3), "{what} true: {}", stderr(&out));
        let told = stderr(&out);
        assert!(
            told.contains("TLS required") && told.contains("does not support TLS"),
            "{what}: {told}"
        );
        for use_tls in [None, Some(Value::Bool(false))] {
            let out = scan(&env, &schema, use_tls.clone(), &[]);
            assert_eq!(exit(&out), Some(0), "{what} {use_tls:?}: {}", stderr(&out));
        }
        // As in DataJoint, DJ_USE_TLS fills in only what the file leaves out.
        let out = scan(
            &env,
            &schema,
            Some(Value::Bool(true)),
            &[("DJ_USE_TLS", "false")],
        );
        assert_eq!(
            exit(&out),
            Some(3),
            "{what} file true, env false: {}",
            stderr(&out)
        );
        let out = scan(&env, &schema, None, &[("DJ_USE_TLS", "true")]);
        assert_eq!(exit(&out), Some(3), "{what} env true: {}", stderr(&out));
    }
}

/// `djgc config` says which TLS mode is used and where it came from.
#[test]
fn config_shows_the_tls_mode_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("datajoint.json"),
        r#"{"database": {"host": "db:3307", "user": "lab", "use_tls": true}, "stores": {}}"#,
    )
    .unwrap();
    let out = djgc_command(dir.path(), &["config", "--json"])
        .output()
        .unwrap();
    assert_eq!(exit(&out), Some(0), "{}", stderr(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let setting = |key: &str| {
        shown["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key}: {shown}"))
    };
    assert_eq!(setting("database.use_tls")["value"], "true (TLS required)");
    assert!(setting("database.use_tls")["source"]
        .as_str()
        .unwrap()
        .starts_with("file "));
    assert_eq!(setting("database.port")["value"], "3307");
    let out = djgc_command(dir.path(), &["config", "--json"])
        .env("DJGC_TLS_CA", "/etc/lab-ca.pem")
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ca = shown["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "database.tls_ca")
        .cloned()
        .unwrap();
    assert_eq!(ca["value"], "/etc/lab-ca.pem");
    assert_eq!(ca["source"], "env DJGC_TLS_CA");
}

/// datajoint 2.3.5 and djgc read one `datajoint.json` (`use_tls` left out,
/// as most labs have it) and both reach the TLS-only servers: DataJoint
/// writes the pipeline, djgc finds dj.gc's orphans and deletes them, and
/// every row still loads.
#[test]
fn datajoint_and_djgc_share_one_datajoint_json_on_tls_only_servers() {
    for (backend, port) in [(Backend::MySql, 3307), (Backend::PostgreSql, 5433)] {
        let what = format!("{backend:?} :{port}");
        let mut env = Env::on(server(backend, port), Kind::File);
        let schema = unique_schema("tlscompat");
        env.schemas.push(schema.clone());
        env.write_config(None);
        let dj = crate::common::datajoint(&env, "populate", &schema);
        let listed = env.dir.path().join("orphans.txt");
        let ours = env.djgc_ok(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--schema-codec",
            "labcontainer",
            "--orphans-out",
            listed.to_str().unwrap(),
            "--delete",
        ]);
        let mut expected = crate::common::strings(&dj["orphaned_hash_paths"]);
        expected.extend(crate::common::strings(&dj["orphaned_schema_paths"]));
        expected.sort();
        assert!(!expected.is_empty(), "{what}");
        assert_eq!(crate::common::read_lines(&listed), expected, "{what}");
        assert_eq!(ours["deleted"], expected.len(), "{what}: {ours}");
        let after = crate::common::datajoint(&env, "verify", &schema);
        assert_eq!(after["rows_loaded"], 27, "{what}: a row no longer loads");
    }
}

/// The dict form of `use_tls` (what `dj.conn(use_tls={"ca": ...})` takes,
/// and what `djgc.collect()` hands over): TLS required and verified with
/// its CA.
#[test]
fn the_use_tls_dict_form_verifies_with_its_ca() {
    for (backend, port) in [(Backend::MySql, 3307), (Backend::PostgreSql, 5433)] {
        let what = format!("{backend:?} :{port}");
        let (env, schema) = env_with_schema(server(backend, port), "tlsdict");
        let dict = |ca: PathBuf| Some(serde_json::json!({"ca": ca.to_str().unwrap()}));
        let out = scan(&env, &schema, dict(ca("ca")), &[]);
        assert_eq!(exit(&out), Some(0), "{what}: {}", stderr(&out));
        let out = scan(&env, &schema, dict(ca("other-ca")), &[]);
        assert_eq!(exit(&out), Some(3), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("other-ca.crt"),
            "{what}: {}",
            stderr(&out)
        );
        // What djgc cannot honour is refused, not dropped.
        let capath = Some(serde_json::json!({"capath": "/etc/ssl/certs"}));
        let out = scan(&env, &schema, capath, &[]);
        assert_eq!(exit(&out), Some(2), "{what}: {}", stderr(&out));
    }
}

/// The Python wrapper hands djgc what the caller's connection was made
/// with: `dj.conn(use_tls=...)`'s value (dict form included), else the
/// config's `database.use_tls`.
#[test]
fn the_python_wrapper_hands_over_use_tls() {
    let python_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python");
    let script = r#"
import json, types, djgc
config = types.SimpleNamespace(
    database=types.SimpleNamespace(host="db:3307", port=None, user="lab", password="",
                                   backend="mysql", name=None, use_tls=None),
    stores={})
dict_conn = types.SimpleNamespace(conn_info={"ssl_input": {"ca": "/lab/ca.pem", "check_hostname": True}})
false_conn = types.SimpleNamespace(conn_info={"ssl_input": False})
print(json.dumps([
    djgc._datajoint_json(config, djgc._use_tls(dict_conn, config))["database"],
    djgc._datajoint_json(config, djgc._use_tls(false_conn, config))["database"],
    djgc._datajoint_json(config, djgc._use_tls(None, config))["database"],
]))
"#;
    let out = std::process::Command::new(crate::common::python())
        .args(["-c", script])
        .env("PYTHONPATH", &python_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let handed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        handed[0]["use_tls"],
        serde_json::json!({"ca": "/lab/ca.pem", "check_hostname": true})
    );
    assert_eq!(handed[1]["use_tls"], false);
    assert!(handed[2].get("use_tls").is_none(), "{handed}");
    // An empty password is handed over as the empty string DataJoint has.
    assert_eq!(handed[2]["password"], "");
}

/// An account that must show a client certificate (MariaDB `REQUIRE X509`,
/// PostgreSQL `cert` authentication): the `cert` and `key` of the `use_tls`
/// dict form present the pair; without them the account is refused.
#[test]
fn a_client_certificate_named_in_use_tls_is_presented() {
    let tls = ca("ca").parent().unwrap().to_path_buf();
    for (backend, port) in [(Backend::MySql, 3307), (Backend::PostgreSql, 5433)] {
        let what = format!("{backend:?} :{port}");
        let (env, schema) = env_with_schema(server(backend, port), "x509");
        let path = env.dir.path().join("datajoint.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["database"]["user"] = "djgc_x509".into();
        std::fs::write(&path, config.to_string()).unwrap();
        let pair = serde_json::json!({
            "ca": tls.join("ca.crt"),
            "cert": tls.join("client.crt"),
            "key": tls.join("client.key"),
        });
        let out = scan(&env, &schema, Some(pair), &[]);
        assert_eq!(exit(&out), Some(0), "{what}: {}", stderr(&out));
        let without = serde_json::json!({"ca": tls.join("ca.crt")});
        let out = scan(&env, &schema, Some(without), &[]);
        assert_eq!(exit(&out), Some(3), "{what}: {}", stderr(&out));
    }
}
