//! A DataJoint `azure` store: a key prefix (`location`) inside an Azure
//! Blob Storage container.
//!
//! Requests go to the Blob REST API, sent and signed (Shared Key) here;
//! tokens for the default credential chain (service principal variables,
//! workload identity, managed identity, the Azure CLI) come from
//! `object_store` (arrow-rs). `object_store`'s own Azure client was measured
//! and not used for the requests, because each of these would put a live
//! object at risk or lose a failure: it reshapes keys it lists (a marker
//! blob `k/` comes back as `k`), counts a batch delete whose answer leaves a
//! key out as done, ignores `x-ms-copy-status` (a copy still pending would
//! have its source deleted), and reports a denied listing as a generic error.
//!
//! * Listing: Azure lists from opaque markers only, in an order that is not
//!   byte order everywhere (hierarchical-namespace accounts list folder by
//!   folder), so a listing is split by folder and never ends early on the
//!   order it sees. A part lists its prefix flat; when its first page is
//!   truncated and spans few folders (so the folders are large), it lists
//!   the prefix's folders with a delimiter and hands each to a new part,
//!   passing on the keys its first page already gave. Every key under the
//!   prefix is then either a blob the delimited listing gives directly or
//!   under exactly one of its folders, so each is listed exactly once
//!   whatever the order. A part whose first page spans many small folders
//!   (a table of one folder per row) pages on flat: one request per
//!   [`PAGE`] keys beats one per row.
//! * Deleting: Blob Batch requests of up to [`AZURE_BATCH`] deletes, each
//!   answer read by its `Content-ID`; a key the answer leaves out failed,
//!   throttled keys are sent again with backoff.
//! * Moving (quarantine): Copy Blob onto a name that must be free
//!   (`If-None-Match: *`) from the exact version looked at
//!   (`x-ms-source-if-match`), waiting while the copy is pending; then a
//!   delete of that version only (`If-Match`).
//! * Azure drops the trailing dots of every path segment of a blob name
//!   (`Jr./f` is stored as `Jr/f`): see [`crate::refs::refset::path_hash`]
//!   for how references are matched to such names.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures_util::stream::{self, StreamExt};
use object_store::azure::{AzureCredential, AzureCredentialProvider, MicrosoftAzureBuilder};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::http::{self, batch_body, Failure, Http};
use super::{
    delete_in_chunks, delete_inside, list_parts, move_each, Deleted, KeyRange, ListSink, Listing,
    Moved, ObjectMeta, SectionOut, SectionSink, Store, StoreError, LIST_BATCH,
};
use crate::config::StoreSpec;
use crate::error::{Error, Result};

/// Deletes per Blob Batch request: the most Azure takes in one.
pub const AZURE_BATCH: usize = 256;
/// Keys per listing page: the most Azure gives.
const PAGE: usize = 5000;
/// A first page spanning at most this many folders splits its part.
const SPLIT_SPAN: usize = 16;
/// What else to check when access is denied.
const PERMISSIONS: &str = "the container's permissions";
/// Batch requests (or single-object requests of a move) in flight.
const REQUESTS_IN_FLIGHT: usize = 8;
/// The REST API version asked for (Blob Batch needs 2018-11-09 or later).
const API_VERSION: &str = "2021-08-06";
/// How long a pending server-side copy is waited for.
const COPY_WAIT: Duration = Duration::from_secs(600);
/// A blob name in a URL path: everything but unreserved characters and `/`
/// escaped.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How requests are authorised.
enum Auth {
    /// Shared Key: the account's name and decoded key.
    SharedKey { account: String, key: Vec<u8> },
    /// A shared access signature, appended to every URL.
    Sas(String),
    /// Tokens from the default credential chain.
    Chain(AzureCredentialProvider),
}

/// A container prefix holding one DataJoint store.
pub struct AzureStore {
    name: String,
    container: String,
    /// `location` with a trailing `/`, or empty.
    root: String,
    /// The Blob service URL, without a trailing `/`.
    endpoint: String,
    auth: Auth,
    http: Http,
    runtime: tokio::runtime::Runtime,
    list_concurrency: usize,
    /// Keys per listing page asked for.
    page_size: usize,
    /// Where the credentials came from, named when access is denied.
    credential_source: String,
}

impl std::fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStore")
            .field("name", &self.name)
            .field("container", &self.container)
            .field("root", &self.root)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A page of List Blobs.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct EnumerationResults {
    #[serde(default)]
    blobs: Entries,
    #[serde(default)]
    next_marker: Option<String>,
}

#[derive(Deserialize, Default)]
struct Entries {
    #[serde(default, rename = "$value")]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
enum Entry {
    Blob(BlobEntry),
    BlobPrefix(PrefixEntry),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BlobEntry {
    name: Name,
    properties: Properties,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PrefixEntry {
    name: Name,
}

/// A name, percent-encoded when it holds characters XML cannot carry.
#[derive(Deserialize)]
struct Name {
    #[serde(default, rename = "@Encoded")]
    encoded: Option<String>,
    #[serde(default, rename = "$text")]
    text: String,
}

impl Name {
    fn decode(self) -> std::result::Result<String, String> {
        if self.encoded.as_deref() == Some("true") {
            percent_decode_str(&self.text)
                .decode_utf8()
                .map(|n| n.into_owned())
                .map_err(|_| format!("an encoded blob name is not UTF-8: {:?}", self.text))
        } else {
            Ok(self.text)
        }
    }
}

#[derive(Deserialize)]
struct Properties {
    /// `directory` for the folder entries of a hierarchical-namespace
    /// account, which are not objects.
    #[serde(rename = "ResourceType", default)]
    resource_type: Option<String>,
    #[serde(rename = "Last-Modified", default)]
    last_modified: Option<String>,
    #[serde(rename = "Content-Length", default)]
    content_length: Option<u64>,
}

/// When a blob arrived; one without a readable time counts as just
/// uploaded, never as from 1970.
fn arrived(last_modified: Option<&str>) -> SystemTime {
    last_modified
        .and_then(|t| httpdate::parse_http_date(t).ok())
        .unwrap_or_else(SystemTime::now)
}

/// One page of a listing, blobs and (with a delimiter) folders, names
/// relative to the container.
struct ListPage {
    blobs: Vec<ObjectMeta>,
    folders: Vec<String>,
    next: Option<String>,
}

/// One part of a split listing: the keys under `prefix`, less those
/// already listed.
struct Part {
    prefix: String,
    listed: HashSet<String>,
}

impl AzureStore {
    /// Connects to the store's container and checks that it can be reached.
    pub fn open(spec: &StoreSpec, list_concurrency: usize) -> Result<Self> {
        let azure = spec
            .azure
            .as_ref()
            .ok_or_else(|| Error::Config(format!("store {:?} has no Azure settings", spec.name)))?;
        let account = azure.account();
        let context = |problem: String| Error::Config(format!("store {:?}: {problem}", spec.name));
        let endpoint = account.endpoint.clone().ok_or_else(|| {
            context(
                "no account: give account_name, or a connection_string with AccountName or \
                 BlobEndpoint"
                    .into(),
            )
        })?;
        let auth = if let Some(key) = &account.key {
            let name = account.name.clone().ok_or_else(|| {
                context("an account key needs the account's name (account_name)".into())
            })?;
            let key = base64::engine::general_purpose::STANDARD
                .decode(key.expose().trim())
                .map_err(|_| {
                    context(format!(
                        "the account key from {} is not base64",
                        account.credential_source
                    ))
                })?;
            Auth::SharedKey { account: name, key }
        } else if let Some(sas) = &account.sas {
            Auth::Sas(sas.expose().trim_start_matches('?').to_string())
        } else {
            let mut builder =
                MicrosoftAzureBuilder::from_env().with_container_name(&azure.container);
            if let Some(name) = &account.name {
                builder = builder.with_account(name);
            }
            let store = builder
                .build()
                .map_err(|e| context(format!("Azure credentials: {e}")))?;
            Auth::Chain(store.credentials().clone())
        };
        let location = spec.location.trim_matches('/');
        let store = AzureStore {
            name: spec.name.clone(),
            container: azure.container.clone(),
            root: if location.is_empty() {
                String::new()
            } else {
                format!("{location}/")
            },
            endpoint,
            auth,
            http: Http::new()?,
            runtime: crate::runtime::new("djgc-azure")?,
            list_concurrency: list_concurrency.max(1),
            page_size: PAGE,
            credential_source: account.credential_source,
        };
        store.check_container()?;
        Ok(store)
    }

    /// Asks for listing pages of at most `keys` keys (at most [`PAGE`]):
    /// for servers that cap pages lower, and for tests that split a
    /// listing without uploading tens of thousands of objects.
    pub fn with_page_size(mut self, keys: usize) -> Self {
        self.page_size = keys.clamp(1, PAGE);
        self
    }

    /// Reads the container's properties, turning the usual failures into
    /// errors that say what to fix.
    fn check_container(&self) -> Result<()> {
        let url = self.container_url();
        let outcome = self.runtime.block_on(async {
            let response = self
                .send(Method::GET, &url, &[("restype", "container")], &[], None)
                .await?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(http::failure(response).await)
            }
        });
        let Err(failure) = outcome else { return Ok(()) };
        let reason = match failure.status {
            None => format!("cannot reach the endpoint: {}", failure.message),
            Some(404) => "the container does not exist".to_string(),
            Some(401 | 403) => self.denied(&failure.message),
            Some(_) => failure.message,
        };
        Err(Error::Config(format!(
            "store {:?}: reading container {:?} at {}: {reason}",
            self.name, self.container, self.endpoint
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

    fn container_url(&self) -> String {
        format!("{}/{}", self.endpoint, self.container)
    }

    /// The URL path of the blob at container key `blob`, as signed.
    fn blob_path(&self, blob: &str) -> String {
        let endpoint_path = self
            .endpoint
            .split("://")
            .nth(1)
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("");
        format!(
            "{endpoint_path}/{}/{}",
            self.container,
            utf8_percent_encode(blob, PATH)
        )
    }

    fn blob_url(&self, key: &str) -> String {
        format!(
            "{}/{}/{}",
            self.endpoint,
            self.container,
            utf8_percent_encode(&format!("{}{key}", self.root), PATH)
        )
    }

    /// The headers that authorise a request (`x-ms-date` and
    /// `Authorization` for Shared Key); `url` gains a signature for SAS.
    async fn authorise(
        &self,
        method: &Method,
        url: &mut reqwest::Url,
        headers: &mut HeaderMap,
        content_length: usize,
    ) -> std::result::Result<(), Failure> {
        headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        match &self.auth {
            Auth::SharedKey { account, key } => {
                let date = httpdate::fmt_http_date(SystemTime::now());
                headers.insert("x-ms-date", header_value(&date));
                let signature =
                    shared_key_signature(account, key, method, url, headers, content_length);
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    header_value(&format!("SharedKey {account}:{signature}")),
                );
            }
            Auth::Sas(sas) => append_query(url, sas),
            Auth::Chain(provider) => {
                let credential = provider.get_credential().await.map_err(|e| Failure {
                    status: None,
                    message: format!("cannot get a token from {}: {e}", self.credential_source),
                })?;
                match credential.as_ref() {
                    AzureCredential::BearerToken(token) => {
                        headers.insert(
                            reqwest::header::AUTHORIZATION,
                            header_value(&format!("Bearer {token}")),
                        );
                    }
                    AzureCredential::SASToken(pairs) => {
                        let query: Vec<String> = pairs
                            .iter()
                            .map(|(k, v)| {
                                format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC))
                            })
                            .collect();
                        append_query(url, &query.join("&"));
                    }
                    AzureCredential::AccessKey(_) => {
                        return Err(Failure {
                            status: Some(401),
                            message: "the credential chain gave an account key, which djgc \
                                      takes only as account_key or in a connection string"
                                .into(),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends one request, authorised, retrying as [`Http::send`] does.
    async fn send(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        extra_headers: &[(&str, String)],
        body: Option<(&[u8], &str)>,
    ) -> std::result::Result<reqwest::Response, Failure> {
        let mut base = reqwest::Url::parse(url).map_err(|e| Failure {
            status: None,
            message: format!("bad URL {url:?}: {e}"),
        })?;
        if !query.is_empty() {
            base.query_pairs_mut().extend_pairs(query);
        }
        let length = body.map_or(0, |(b, _)| b.len());
        let mut headers = HeaderMap::new();
        for (name, value) in extra_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            headers.insert(name, header_value(value));
        }
        if let Some((_, content_type)) = body {
            headers.insert(reqwest::header::CONTENT_TYPE, header_value(content_type));
        }
        if length > 0 || matches!(method, Method::PUT | Method::POST) {
            headers.insert(
                reqwest::header::CONTENT_LENGTH,
                header_value(&length.to_string()),
            );
        }
        self.http
            .send(|| async {
                // Signed anew each attempt: a Shared Key signature carries its time.
                let mut url = base.clone();
                let mut headers = headers.clone();
                self.authorise(&method, &mut url, &mut headers, length)
                    .await?;
                let mut request = reqwest::Request::new(method.clone(), url);
                *request.headers_mut() = headers;
                if let Some((bytes, _)) = body {
                    *request.body_mut() = Some(bytes.to_vec().into());
                }
                Ok(request)
            })
            .await
    }
}

/// A header value; a value no header may hold becomes empty (and the
/// request then fails where it is checked) rather than panicking.
fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `url` with `query` (already encoded) added to its query string.
fn append_query(url: &mut reqwest::Url, query: &str) {
    let joined = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
        _ => query.to_string(),
    };
    url.set_query(Some(&joined));
}

/// The Shared Key signature of a request (Blob service, version
/// 2015-02-21 and later): HMAC-SHA256 with the account key of the verb, the
/// standard headers, the `x-ms-` headers and the resource.
fn shared_key_signature(
    account: &str,
    key: &[u8],
    method: &Method,
    url: &reqwest::Url,
    headers: &HeaderMap,
    content_length: usize,
) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut ms_headers: Vec<(&str, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
        .map(|(name, value)| {
            (
                name.as_str(),
                value.to_str().unwrap_or("").trim().to_string(),
            )
        })
        .collect();
    ms_headers.sort();
    let mut to_sign = format!(
        "{}\n{}\n{}\n{length}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        method.as_str(),
        header("content-encoding"),
        header("content-language"),
        header("content-md5"),
        header("content-type"),
        header("date"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    for (name, value) in ms_headers {
        to_sign.push_str(&format!("{name}:{value}\n"));
    }
    to_sign.push_str(&format!("/{account}{}", url.path()));
    let mut parameters: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in url.query_pairs() {
        parameters
            .entry(name.to_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    for (name, mut values) in parameters {
        values.sort();
        to_sign.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()))
}

/// What a HEAD of a blob tells.
struct BlobProperties {
    meta: ObjectMeta,
    etag: String,
    copy_status: Option<String>,
}

impl AzureStore {
    /// One page of List Blobs under container key `prefix`.
    async fn list_page(
        &self,
        prefix: &str,
        delimiter: bool,
        marker: Option<&str>,
    ) -> std::result::Result<ListPage, Failure> {
        let page_size = self.page_size.to_string();
        let mut query = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("prefix", prefix),
            ("maxresults", page_size.as_str()),
        ];
        if delimiter {
            query.push(("delimiter", "/"));
        }
        if let Some(marker) = marker {
            query.push(("marker", marker));
        }
        let response = self
            .send(Method::GET, &self.container_url(), &query, &[], None)
            .await?;
        if !response.status().is_success() {
            return Err(http::failure(response).await);
        }
        let text = response.text().await.map_err(|e| Failure {
            status: None,
            message: format!("unreadable listing: {}", http::describe_transport(e)),
        })?;
        let unreadable = |e: String| Failure {
            status: None,
            message: format!("unreadable listing: {e}"),
        };
        let results: EnumerationResults =
            quick_xml::de::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        let mut page = ListPage {
            blobs: Vec::new(),
            folders: Vec::new(),
            next: results.next_marker.filter(|m| !m.is_empty()),
        };
        for entry in results.blobs.entries {
            match entry {
                Entry::Blob(blob)
                    if blob.properties.resource_type.as_deref() == Some("directory") => {}
                Entry::Blob(blob) => page.blobs.push(ObjectMeta {
                    key: blob.name.decode().map_err(unreadable)?,
                    size: blob.properties.content_length.unwrap_or(0),
                    modified: arrived(blob.properties.last_modified.as_deref()),
                }),
                Entry::BlobPrefix(folder) => {
                    page.folders.push(folder.name.decode().map_err(unreadable)?)
                }
            }
        }
        Ok(page)
    }

    /// Lists the container keys of `sections` (prefix and range each) into
    /// `out`, split by folder (see the module docs), at most
    /// `list_concurrency` parts of all the sections at a time.
    async fn list_split(
        &self,
        sections: Vec<(String, KeyRange)>,
        out: mpsc::Sender<(usize, Listing)>,
    ) {
        let stack: Vec<(usize, Part)> = sections
            .iter()
            .enumerate()
            .filter(|(_, (prefix, range))| range.meets_prefix(prefix))
            .map(|(index, (prefix, _))| {
                let part = Part {
                    prefix: prefix.clone(),
                    listed: HashSet::new(),
                };
                (index, part)
            })
            .collect();
        let sections = &sections;
        list_parts(
            stack,
            self.list_concurrency,
            || out.is_closed(),
            |(index, part)| {
                let section = SectionOut {
                    index,
                    tx: out.clone(),
                };
                async move {
                    let children = self.list_part(part, &sections[index].1, &section).await;
                    children.into_iter().map(|child| (index, child)).collect()
                }
            },
        )
        .await;
    }

    /// Lists one part; the parts it was split into, if it was.
    async fn list_part(&self, part: Part, range: &KeyRange, out: &SectionOut) -> Vec<Part> {
        let Part { prefix, mut listed } = part;
        // Hands over the blobs of a page that belong to this part; false
        // once the consumer has stopped listening.
        let deliver = |blobs: Vec<ObjectMeta>, listed: &HashSet<String>| {
            let mut mine: Vec<ObjectMeta> = blobs
                .into_iter()
                .filter(|b| {
                    b.key.starts_with(prefix.as_str())
                        && range.contains(&b.key)
                        && !listed.contains(&b.key)
                })
                .collect();
            let out = out.clone();
            async move {
                while !mine.is_empty() {
                    let rest = mine.split_off(mine.len().min(LIST_BATCH));
                    let batch = std::mem::replace(&mut mine, rest);
                    if !out.send(Listing::Objects(batch)).await {
                        return false;
                    }
                }
                true
            }
        };
        let report = |failure: Failure| {
            let out = out.clone();
            let error = self.failure("list", &prefix, failure);
            async move {
                out.send(Listing::Error(error)).await;
            }
        };
        let first = match self.list_page(&prefix, false, None).await {
            Ok(page) => page,
            Err(failure) => {
                report(failure).await;
                return Vec::new();
            }
        };
        let folders: HashSet<&str> = first
            .blobs
            .iter()
            .filter_map(|b| b.key.strip_prefix(prefix.as_str())?.split_once('/'))
            .map(|(folder, _)| folder)
            .collect();
        // One part at a time gains nothing from splitting.
        let split = self.list_concurrency > 1
            && first.next.is_some()
            && (1..=SPLIT_SPAN).contains(&folders.len());
        let first_keys: Vec<String> = if split {
            first.blobs.iter().map(|b| b.key.clone()).collect()
        } else {
            Vec::new()
        };
        let mut marker = first.next.clone();
        if !deliver(first.blobs, &listed).await {
            return Vec::new();
        }
        if split {
            listed.extend(first_keys);
            let mut children = Vec::new();
            let mut marker = None;
            loop {
                let page = match self.list_page(&prefix, true, marker.as_deref()).await {
                    Ok(page) => page,
                    Err(failure) => {
                        report(failure).await;
                        return Vec::new();
                    }
                };
                if !deliver(page.blobs, &listed).await {
                    return Vec::new();
                }
                for folder in page.folders {
                    if folder.starts_with(prefix.as_str())
                        && folder.len() > prefix.len()
                        && range.meets_prefix(&folder)
                    {
                        let inherited = listed
                            .iter()
                            .filter(|k| k.starts_with(folder.as_str()))
                            .cloned()
                            .collect();
                        children.push(Part {
                            prefix: folder,
                            listed: inherited,
                        });
                    }
                }
                match page.next {
                    Some(next) => marker = Some(next),
                    None => return children,
                }
            }
        }
        while let Some(current) = marker.take() {
            let page = match self.list_page(&prefix, false, Some(&current)).await {
                Ok(page) => page,
                Err(failure) => {
                    report(failure).await;
                    return Vec::new();
                }
            };
            marker = page.next;
            if !deliver(page.blobs, &listed).await {
                return Vec::new();
            }
        }
        Vec::new()
    }

    /// HEAD of the blob at store key `key`; `None` when there is none.
    async fn properties(&self, key: &str) -> std::result::Result<Option<BlobProperties>, Failure> {
        let response = self
            .send(Method::HEAD, &self.blob_url(key), &[], &[], None)
            .await?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                Ok(Some(BlobProperties {
                    meta: ObjectMeta {
                        key: key.to_string(),
                        size: header("content-length")
                            .and_then(|l| l.parse().ok())
                            .unwrap_or(0),
                        modified: arrived(header("last-modified").as_deref()),
                    },
                    etag: header("etag").unwrap_or_default(),
                    copy_status: header("x-ms-copy-status"),
                }))
            }
            status => Err(Failure {
                status: Some(status),
                message: format!(
                    "HTTP {status} {}",
                    response
                        .headers()
                        .get("x-ms-error-code")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                ),
            }),
        }
    }

    /// Deletes container keys in one Blob Batch request per call of
    /// [`http::delete_in_batches`].
    async fn delete_batch(&self, keys: &[&str]) -> Vec<Result<Deleted, StoreError>> {
        let url = self.container_url();
        let origin_end = self
            .endpoint
            .split("://")
            .nth(1)
            .and_then(|rest| rest.find('/'))
            .map_or(self.endpoint.len(), |i| {
                self.endpoint.find("://").unwrap_or(0) + 3 + i
            });
        let origin = &self.endpoint[..origin_end];
        http::delete_in_batches(
            keys,
            |pending: Vec<&str>, attempt| {
                let url = url.clone();
                async move {
                    let mut requests = Vec::with_capacity(pending.len());
                    for key in &pending {
                        let path = self.blob_path(&format!("{}{key}", self.root));
                        let mut headers = HeaderMap::new();
                        let mut sub_url =
                            reqwest::Url::parse(&format!("{origin}{path}")).map_err(|e| {
                                Failure {
                                    status: None,
                                    message: format!("bad blob URL: {e}"),
                                }
                            })?;
                        match &self.auth {
                            Auth::SharedKey { account, key } => {
                                let date = httpdate::fmt_http_date(SystemTime::now());
                                headers.insert("x-ms-date", header_value(&date));
                                let signature = shared_key_signature(
                                    account,
                                    key,
                                    &Method::DELETE,
                                    &sub_url,
                                    &headers,
                                    0,
                                );
                                headers.insert(
                                    reqwest::header::AUTHORIZATION,
                                    header_value(&format!("SharedKey {account}:{signature}")),
                                );
                            }
                            _ => {
                                self.authorise(&Method::DELETE, &mut sub_url, &mut headers, 0)
                                    .await?;
                                headers.remove("x-ms-version");
                            }
                        }
                        let target = match sub_url.query() {
                            Some(query) => format!("{}?{query}", sub_url.path()),
                            None => sub_url.path().to_string(),
                        };
                        let mut request = format!("DELETE {target} HTTP/1.1\r\n");
                        for (name, value) in &headers {
                            request
                                .push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
                        }
                        request.push_str("Content-Length: 0\r\n\r\n");
                        requests.push(request);
                    }
                    let boundary = format!("batch_djgc_{attempt}_{}", requests.len());
                    let body = batch_body(&boundary, &requests, |i| i.to_string());
                    let content_type = format!("multipart/mixed; boundary={boundary}");
                    let response = self
                        .send(
                            Method::POST,
                            &url,
                            &[("restype", "container"), ("comp", "batch")],
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

    /// Moves one object: a server-side copy onto a free name from the
    /// version of `from` looked at, waited for while pending, then a delete
    /// of that version. A crash in between leaves both copies.
    async fn move_object(&self, from: &str, to: &str) -> Result<Moved, StoreError> {
        let Some(source) = self
            .properties(from)
            .await
            .map_err(|f| self.failure("move", from, f))?
        else {
            return Ok(Moved::SourceMissing);
        };
        if self
            .properties(to)
            .await
            .map_err(|f| self.failure("move", to, f))?
            .is_some()
        {
            return Ok(Moved::TargetExists);
        }
        let mut source_url = reqwest::Url::parse(&self.blob_url(from))
            .map_err(|e| StoreError::new("copy", from, e.to_string()))?;
        if let Auth::Sas(sas) = &self.auth {
            append_query(&mut source_url, sas);
        }
        let response = self
            .send(
                Method::PUT,
                &self.blob_url(to),
                &[],
                &[
                    ("x-ms-copy-source", source_url.to_string()),
                    ("x-ms-source-if-match", source.etag.clone()),
                    ("if-none-match", "*".to_string()),
                ],
                None,
            )
            .await
            .map_err(|f| self.failure("copy", from, f))?;
        let error_code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut status = response
            .headers()
            .get("x-ms-copy-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match response.status().as_u16() {
            200..=299 => {}
            // Gone, or the server could not read it (a source it may not
            // read also answers 404): only a source that is really gone is
            // `SourceMissing`, which restore takes for "nothing to do".
            404 => {
                return match self.properties(from).await {
                    Ok(None) => Ok(Moved::SourceMissing),
                    Ok(Some(_)) => Err(StoreError::new(
                        "copy",
                        from,
                        format!("the server could not read the source to copy it ({error_code})"),
                    )),
                    Err(f) => Err(self.failure("copy", from, f)),
                }
            }
            409 | 412 if error_code != "SourceConditionNotMet" => return Ok(Moved::TargetExists),
            412 => {
                return Err(StoreError::new(
                    "move",
                    from,
                    "the object changed while it was being moved; left in place",
                ))
            }
            _ => return Err(self.failure("copy", from, http::failure(response).await)),
        }
        if status.is_none() {
            status = self
                .properties(to)
                .await
                .map_err(|f| self.failure("copy", to, f))?
                .and_then(|p| p.copy_status);
        }
        let waited = std::time::Instant::now();
        while status.as_deref() == Some("pending") {
            if waited.elapsed() > COPY_WAIT {
                return Err(StoreError::new(
                    "copy",
                    from,
                    "the server-side copy is still pending; the source is left in place",
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            status = self
                .properties(to)
                .await
                .map_err(|f| self.failure("copy", to, f))?
                .and_then(|p| p.copy_status);
        }
        // Only a copy the server says succeeded lets the source go: a copy
        // that failed, or whose target vanished meanwhile, keeps it.
        if status.as_deref() != Some("success") {
            return Err(StoreError::new(
                "copy",
                from,
                format!(
                    "the server-side copy did not end in success ({}); the source is left in place",
                    status.as_deref().unwrap_or("no copy status")
                ),
            ));
        }
        let response = self
            .send(
                Method::DELETE,
                &self.blob_url(from),
                &[],
                &[("if-match", source.etag)],
                None,
            )
            .await
            .map_err(|f| self.failure("delete", from, f))?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(Moved::Done),
            412 => Err(StoreError::new(
                "delete",
                from,
                "replaced by a new upload while being moved: copied, and the new one left in place",
            )),
            _ => Err(self.failure("delete", from, http::failure(response).await)),
        }
    }
}

impl Store for AzureStore {
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
            |sections, out| self.list_split(sections, out),
        );
    }

    fn delete(&self, section_prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        delete_inside(section_prefix, keys, |inside| {
            self.runtime.block_on(delete_in_chunks(
                inside,
                AZURE_BATCH,
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
                    self.properties(key)
                        .await
                        .map(|p| p.map(|p| p.meta))
                        .map_err(|f| self.failure("head", key, f))
                })
                .buffered(self.list_concurrency)
                .collect(),
        )
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = format!("{}{prefix}", self.root);
        self.runtime.block_on(async {
            let mut folders = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let page = self
                    .list_page(&full, true, marker.as_deref())
                    .await
                    .map_err(|f| self.failure("list", prefix, f))?;
                folders.extend(page.folders.iter().filter_map(|p| {
                    let name = p.strip_prefix(full.as_str())?;
                    Some(name.trim_end_matches('/').to_string())
                }));
                match page.next {
                    Some(next) => marker = Some(next),
                    None => break,
                }
            }
            folders.sort();
            Ok(folders)
        })
    }

    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.runtime.block_on(async {
            let response = self
                .send(
                    Method::PUT,
                    &self.blob_url(key),
                    &[],
                    &[("x-ms-blob-type", "BlockBlob".to_string())],
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
                .send(Method::GET, &self.blob_url(key), &[], &[], None)
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
