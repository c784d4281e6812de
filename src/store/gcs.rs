//! A DataJoint `gcs` store: a key prefix (`location`) inside a Google Cloud
//! Storage bucket.
//!
//! Requests go to GCS's JSON API, sent here; credentials come from
//! `object_store` (arrow-rs), which keeps Google's credential chain: a
//! service account's key, gcloud's application-default file
//! (`GOOGLE_APPLICATION_CREDENTIALS` or its default place), the metadata
//! server. `object_store`'s own GCS client was measured and not used for the
//! requests: it speaks the XML API, which cannot list from a given key
//! (`startOffset`, what splits a listing across workers), deletes one object
//! per request, and is not served by the emulators labs test with.
//!
//! * Listing splits a section's key space as on S3 ([`super::keyspace`]):
//!   `startOffset` (inclusive) stands for S3's `StartAfter`, the key itself
//!   dropped; GCS lists in byte order, as the split needs.
//! * Deleting sends up to [`GCS_BATCH`] deletes per batch request, several
//!   batches at once; each key's answer is read by its `Content-ID`, a key
//!   the answer does not mention failed, and throttled keys (429, 503) are
//!   sent again with backoff.
//! * Moving (quarantine) is a server-side rewrite that only creates
//!   (`ifGenerationMatch=0`) from the exact generation looked at, then a
//!   delete of that generation only: a replaced source stays where it is.
//! * `STORAGE_EMULATOR_HOST` (as gcsfs honours it) points the store at an
//!   emulator, without credentials.

use std::time::SystemTime;

use futures_util::stream::{self, StreamExt};
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::Deserialize;

use super::http::{self, batch_body, Failure, Http};
use super::keyspace::{list_parallel, Page, PageLister};
use super::{
    delete_in_chunks, delete_inside, move_each, Deleted, KeyRange, ListSink, Moved, ObjectMeta,
    SectionSink, Store, StoreError,
};
use crate::config::{GcsToken, StoreSpec};
use crate::error::{Error, Result};

/// Deletes per batch request: the most GCS takes in one.
pub const GCS_BATCH: usize = 100;
/// What else to check when access is denied.
const PERMISSIONS: &str = "the bucket's permissions";
/// Batch requests (or single-object requests of a move) in flight.
const REQUESTS_IN_FLIGHT: usize = 8;
/// An object name as one path segment: everything but unreserved characters
/// escaped, `/` included.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const GOOGLE: &str = "https://storage.googleapis.com";

/// A bucket prefix holding one DataJoint store.
pub struct GcsStore {
    name: String,
    bucket: String,
    /// `location` with a trailing `/`, or empty.
    root: String,
    /// `https://storage.googleapis.com`, or the emulator's URL.
    base: String,
    http: Http,
    /// `None`: requests go unsigned (`anon`, or an emulator).
    credentials: Option<GcpCredentialProvider>,
    runtime: tokio::runtime::Runtime,
    list_concurrency: usize,
    /// Where the credentials came from, named when access is denied.
    credential_source: String,
}

impl std::fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsStore")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An object as the JSON API describes it.
#[derive(Deserialize)]
struct Resource {
    name: String,
    #[serde(default, deserialize_with = "number_or_text")]
    size: u64,
    #[serde(default)]
    updated: Option<String>,
    #[serde(default, rename = "timeCreated")]
    time_created: Option<String>,
    #[serde(default, deserialize_with = "number_or_text")]
    generation: u64,
}

/// GCS writes 64-bit numbers as JSON strings.
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Text(String),
        Number(u64),
    }
    match Number::deserialize(d)? {
        Number::Number(n) => Ok(n),
        Number::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize, Default)]
struct ObjectList {
    #[serde(default)]
    items: Vec<Resource>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Rewrite {
    done: bool,
    #[serde(default, rename = "rewriteToken")]
    rewrite_token: Option<String>,
}

impl Resource {
    /// When the object arrived: its last update (a metadata change makes it
    /// look younger, never older); one without a time counts as just
    /// uploaded, never as from 1970.
    fn modified(&self) -> SystemTime {
        self.updated
            .as_deref()
            .or(self.time_created.as_deref())
            .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
            .unwrap_or_else(SystemTime::now)
    }
}

impl GcsStore {
    /// Connects to the store's bucket and checks that it can be reached.
    pub fn open(spec: &StoreSpec, list_concurrency: usize) -> Result<Self> {
        let gcs = spec
            .gcs
            .as_ref()
            .ok_or_else(|| Error::Config(format!("store {:?} has no GCS settings", spec.name)))?;
        let runtime = crate::runtime::new("djgc-gcs")?;
        let emulator = gcs.emulator.clone();
        let base = match &emulator {
            Some(host) if host.contains("://") => host.trim_end_matches('/').to_string(),
            Some(host) => format!("http://{}", host.trim_end_matches('/')),
            None => GOOGLE.to_string(),
        };
        let context = |problem: String| {
            Error::Config(format!("store {:?}: GCS credentials: {problem}", spec.name))
        };
        let builder = || {
            let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&gcs.bucket);
            if let Some(emulator) = &emulator {
                builder = builder.with_url(emulator.clone());
            }
            builder
        };
        let (credentials, credential_source) = match (&gcs.token, &emulator) {
            (GcsToken::Anonymous, _) => (None, "token \"anon\" (no credentials)".to_string()),
            (GcsToken::Default, Some(_)) => (
                None,
                "STORAGE_EMULATOR_HOST (an emulator: no credentials)".to_string(),
            ),
            (GcsToken::Default, None) => {
                let store = builder().build().map_err(|e| context(e.to_string()))?;
                let source = match std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
                    Ok(path) => format!("GOOGLE_APPLICATION_CREDENTIALS={path}"),
                    Err(_) => "application-default credentials (gcloud's file, or the \
                               metadata server)"
                        .to_string(),
                };
                (Some(store.credentials().clone()), source)
            }
            (GcsToken::File(path), _) => {
                if !path.is_file() {
                    return Err(context(format!(
                        "the token file {} cannot be read",
                        path.display()
                    )));
                }
                let store = builder()
                    .with_application_credentials(path.to_string_lossy())
                    .build()
                    .map_err(|e| context(format!("token file {}: {e}", path.display())))?;
                (
                    Some(store.credentials().clone()),
                    format!("the token file {}", path.display()),
                )
            }
            (GcsToken::ServiceAccountKey(key), _) => {
                let store = builder()
                    .with_service_account_key(key.expose())
                    .build()
                    .map_err(|_| {
                        context("the service account key given as token cannot be read".into())
                    })?;
                (
                    Some(store.credentials().clone()),
                    "the service account key given as token".to_string(),
                )
            }
        };
        let location = spec.location.trim_matches('/');
        let store = GcsStore {
            name: spec.name.clone(),
            bucket: gcs.bucket.clone(),
            root: if location.is_empty() {
                String::new()
            } else {
                format!("{location}/")
            },
            base,
            http: Http::new()?,
            credentials,
            runtime,
            list_concurrency: list_concurrency.max(1),
            credential_source,
        };
        store.check_bucket()?;
        Ok(store)
    }

    /// Reads the bucket's metadata, turning the usual failures into errors
    /// that say what to fix.
    fn check_bucket(&self) -> Result<()> {
        let url = format!("{}/storage/v1/b/{}", self.base, self.bucket);
        let outcome = self.runtime.block_on(async {
            let response = self.send(Method::GET, &url, &[], None).await?;
            match response.status().as_u16() {
                200..=299 => Ok(()),
                // Object roles (roles/storage.objectAdmin) may not read the
                // bucket's metadata: listing the store's own keys is what
                // djgc needs.
                403 => self
                    .list_bucket(&self.root, None, false, None)
                    .await
                    .map(drop),
                _ => Err(http::failure(response).await),
            }
        });
        let Err(failure) = outcome else { return Ok(()) };
        let reason = match failure.status {
            None => format!("cannot reach {}: {}", self.base, failure.message),
            Some(404) => "the bucket does not exist".to_string(),
            Some(401 | 403) => self.denied(&failure.message),
            Some(_) => failure.message,
        };
        Err(Error::Config(format!(
            "store {:?}: reading bucket {:?} at {}: {reason}",
            self.name, self.bucket, self.base
        )))
    }

    /// An access denial, with where the credentials came from.
    fn denied(&self, error: &str) -> String {
        http::denied(&self.credential_source, PERMISSIONS, error)
    }

    /// `operation` on `key` failed.
    fn failure(&self, operation: &'static str, key: &str, failure: Failure) -> StoreError {
        failure.into_store_error(operation, key, &self.credential_source, PERMISSIONS)
    }

    fn bucket_key(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    /// The JSON API URL of the object at `key` (store-relative).
    fn object_url(&self, key: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            self.bucket,
            utf8_percent_encode(&self.bucket_key(key), SEGMENT)
        )
    }

    /// Sends one request, signed when the store has credentials, retrying
    /// as [`Http::send`] does.
    async fn send(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<(&[u8], &str)>,
    ) -> std::result::Result<reqwest::Response, Failure> {
        self.http
            .send(|| async {
                let mut request = self.http.client().request(method.clone(), url).query(query);
                if let Some(provider) = &self.credentials {
                    let credential = provider.get_credential().await.map_err(|e| Failure {
                        status: None,
                        message: format!("cannot get a token from {}: {e}", self.credential_source),
                    })?;
                    request = request.bearer_auth(&credential.bearer);
                }
                if let Some((bytes, content_type)) = body {
                    request = request
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(bytes.to_vec());
                }
                request.build().map_err(|e| Failure {
                    status: None,
                    message: e.to_string(),
                })
            })
            .await
    }

    /// The object at `key` (store-relative), or `None`.
    async fn resource(&self, key: &str) -> std::result::Result<Option<Resource>, Failure> {
        let response = self
            .send(Method::GET, &self.object_url(key), &[], None)
            .await?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => response.json().await.map(Some).map_err(|e| Failure {
                status: None,
                message: format!("unreadable object metadata: {e}"),
            }),
            _ => Err(http::failure(response).await),
        }
    }

    /// One page of the bucket listing.
    async fn list_bucket(
        &self,
        prefix: &str,
        start_offset: Option<&str>,
        delimiter: bool,
        token: Option<&str>,
    ) -> std::result::Result<ObjectList, Failure> {
        let url = format!("{}/storage/v1/b/{}/o", self.base, self.bucket);
        let mut query = vec![("prefix", prefix), ("maxResults", "1000")];
        if let Some(start) = start_offset {
            query.push(("startOffset", start));
        }
        if delimiter {
            query.push(("delimiter", "/"));
        }
        if let Some(token) = token {
            query.push(("pageToken", token));
        }
        let response = self.send(Method::GET, &url, &query, None).await?;
        if !response.status().is_success() {
            return Err(http::failure(response).await);
        }
        response.json().await.map_err(|e| Failure {
            status: None,
            message: format!("unreadable listing: {e}"),
        })
    }

    /// Deletes up to [`GCS_BATCH`] store keys in batch requests (see
    /// [`http::delete_in_batches`]).
    async fn delete_batch(&self, keys: &[&str]) -> Vec<Result<Deleted, StoreError>> {
        let host = self.base.split("://").nth(1).unwrap_or(&self.base);
        let url = format!("{}/batch/storage/v1", self.base);
        http::delete_in_batches(
            keys,
            |pending: Vec<&str>, attempt| {
                let url = url.clone();
                async move {
                    let requests: Vec<String> = pending
                        .iter()
                        .map(|key| {
                            format!(
                                "DELETE /storage/v1/b/{}/o/{} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                                self.bucket,
                                utf8_percent_encode(&self.bucket_key(key), SEGMENT)
                            )
                        })
                        .collect();
                    let boundary = format!("djgc_batch_{attempt}_{}", requests.len());
                    let body = batch_body(&boundary, &requests, |i| format!("<{i}>"));
                    let content_type = format!("multipart/mixed; boundary={boundary}");
                    let response = self
                        .send(
                            Method::POST,
                            &url,
                            &[],
                            Some((body.as_bytes(), &content_type)),
                        )
                        .await?;
                    http::read_batch_answer(response).await
                }
            },
            |key, failure| self.failure("delete", key, failure),
        )
        .await
    }

    /// Moves one object: a rewrite that only creates `to`, from the
    /// generation of `from` looked at, then a delete of that generation.
    /// A crash in between leaves both copies.
    async fn move_object(&self, from: &str, to: &str) -> Result<Moved, StoreError> {
        let Some(source) = self
            .resource(from)
            .await
            .map_err(|f| self.failure("move", from, f))?
        else {
            return Ok(Moved::SourceMissing);
        };
        if self
            .resource(to)
            .await
            .map_err(|f| self.failure("move", to, f))?
            .is_some()
        {
            return Ok(Moved::TargetExists);
        }
        let url = format!(
            "{}/rewriteTo/b/{}/o/{}",
            self.object_url(from),
            self.bucket,
            utf8_percent_encode(&self.bucket_key(to), SEGMENT)
        );
        let generation = source.generation.to_string();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("ifGenerationMatch", "0"),
                ("ifSourceGenerationMatch", generation.as_str()),
            ];
            if let Some(token) = &token {
                query.push(("rewriteToken", token));
            }
            let response = self
                .send(Method::POST, &url, &query, None)
                .await
                .map_err(|f| self.failure("copy", from, f))?;
            match response.status().as_u16() {
                200 => {}
                404 => return Ok(Moved::SourceMissing),
                412 => {
                    return match self
                        .resource(to)
                        .await
                        .map_err(|f| self.failure("move", to, f))?
                    {
                        Some(_) => Ok(Moved::TargetExists),
                        None => Err(StoreError::new(
                            "move",
                            from,
                            "the object changed while it was being moved; left in place",
                        )),
                    }
                }
                _ => return Err(self.failure("copy", from, http::failure(response).await)),
            }
            let rewrite: Rewrite = response
                .json()
                .await
                .map_err(|e| StoreError::new("copy", from, format!("unreadable answer: {e}")))?;
            if rewrite.done {
                break;
            }
            match rewrite.rewrite_token {
                Some(next) => token = Some(next),
                None => {
                    return Err(StoreError::new(
                        "copy",
                        from,
                        "the rewrite is not done and gave no token to go on; the source is left in place",
                    ))
                }
            }
        }
        let response = self
            .send(
                Method::DELETE,
                &self.object_url(from),
                &[("ifGenerationMatch", generation.as_str())],
                None,
            )
            .await
            .map_err(|f| self.failure("delete", from, f))?;
        match response.status().as_u16() {
            200 | 204 | 404 => Ok(Moved::Done),
            412 => Err(StoreError::new(
                "delete",
                from,
                "replaced by a new upload while being moved: copied, and the new one left in place",
            )),
            _ => Err(self.failure("delete", from, http::failure(response).await)),
        }
    }
}

impl PageLister for GcsStore {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<Page, StoreError> {
        let list = self
            .list_bucket(prefix, start_after, false, token)
            .await
            .map_err(|f| self.failure("list", prefix, f))?;
        let objects = list
            .items
            .into_iter()
            .filter(|item| Some(item.name.as_str()) != start_after)
            .map(|item| ObjectMeta {
                modified: item.modified(),
                size: item.size,
                key: item.name,
            })
            .collect();
        Ok(Page {
            objects,
            next: list.next_page_token,
        })
    }
}

impl Store for GcsStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn list_range(&self, prefix: &str, range: &KeyRange, sink: &ListSink<'_>) {
        self.list_sections(&[(prefix, range)], &|_, item| sink(item));
    }

    fn list_sections(&self, sections: &[(&str, &KeyRange)], sink: &SectionSink<'_>) {
        super::list_on_runtime(
            &self.runtime,
            &self.root,
            sections,
            self.list_concurrency,
            sink,
            |sections, out| list_parallel(self, sections, self.list_concurrency, out),
        );
    }

    fn delete(&self, section_prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        delete_inside(section_prefix, keys, |inside| {
            self.runtime.block_on(delete_in_chunks(
                inside,
                GCS_BATCH,
                REQUESTS_IN_FLIGHT,
                |chunk| self.delete_batch(chunk),
            ))
        })
    }

    fn rename(
        &self,
        from_prefix: &str,
        moves: &[(String, String)],
    ) -> Vec<Result<Moved, StoreError>> {
        self.runtime.block_on(move_each(
            from_prefix,
            moves,
            REQUESTS_IN_FLIGHT,
            |from, to| self.move_object(from, to),
        ))
    }

    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>> {
        self.runtime.block_on(
            stream::iter(keys)
                .map(|key| async move {
                    let resource = self
                        .resource(key)
                        .await
                        .map_err(|f| self.failure("head", key, f))?;
                    Ok(resource.map(|r| ObjectMeta {
                        key: key.clone(),
                        size: r.size,
                        modified: r.modified(),
                    }))
                })
                .buffered(self.list_concurrency)
                .collect(),
        )
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = self.bucket_key(prefix);
        self.runtime.block_on(async {
            let mut folders = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .list_bucket(&full, None, true, token.as_deref())
                    .await
                    .map_err(|f| self.failure("list", prefix, f))?;
                folders.extend(page.prefixes.iter().filter_map(|p| {
                    let name = p.strip_prefix(full.as_str())?;
                    Some(name.trim_end_matches('/').to_string())
                }));
                match page.next_page_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            folders.sort();
            Ok(folders)
        })
    }

    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let url = format!("{}/upload/storage/v1/b/{}/o", self.base, self.bucket);
        let name = self.bucket_key(key);
        self.runtime.block_on(async {
            let response = self
                .send(
                    Method::POST,
                    &url,
                    &[("uploadType", "media"), ("name", &name)],
                    Some((&body, "application/octet-stream")),
                )
                .await
                .map_err(|f| self.failure("put", key, f))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(self.failure("put", key, http::failure(response).await))
            }
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.runtime.block_on(async {
            let response = self
                .send(
                    Method::GET,
                    &self.object_url(key),
                    &[("alt", "media")],
                    None,
                )
                .await
                .map_err(|f| self.failure("get", key, f))?;
            match response.status().as_u16() {
                404 => Ok(None),
                200 => http::read_capped(key, response).await.map(Some),
                _ => Err(self.failure("get", key, http::failure(response).await)),
            }
        })
    }
}
