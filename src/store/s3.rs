//! A DataJoint `s3` store: a key prefix (`location`) inside a bucket, on AWS
//! or any S3-compatible server.
//!
//! Listing splits a section's key space and lists the parts concurrently
//! ([`super::keyspace`]); sizes and modification times come from the listing,
//! never from a request per object. Deleting sends up to 1,000 keys per
//! DeleteObjects request and reports every per-key error; a server without
//! DeleteObjects gets single-key deletes. Throttling (503 SlowDown), 5xx
//! answers and timeouts are retried by the SDK's standard retry policy:
//! exponential backoff with jitter, up to [`MAX_ATTEMPTS`] attempts; what still
//! fails is an error for that key or page, never silently dropped.
//!
//! There are no folders on S3: nothing to prune, and a folder object (Zarr)
//! is simply its keys.
//!
//! Quarantine and restore move objects by server-side copy, pinned to the
//! ETag looked at; CopyObject takes at most 5 GiB, so a larger object (raw
//! recordings often are) is copied in ranges with UploadPartCopy into a
//! multipart upload, which is aborted if any part fails.
//!
//! The [`Store`] interface is synchronous; this store owns a small tokio
//! runtime and bridges to it. Secrets go only to the SDK's credential
//! provider and never into a message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_config::meta::region::RegionProviderChain;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::keyspace::{list_parallel, Page, PageLister};
use super::{
    delete_inside, move_each, too_large, Deleted, KeyRange, ListSink, Moved, ObjectMeta,
    SectionSink, Store, StoreError, StoreErrorKind, SMALL_OBJECT_LIMIT,
};
use crate::config::StoreSpec;
use crate::error::{Error, Result};

/// Attempts per request before a page or a batch counts as failed.
pub const MAX_ATTEMPTS: u32 = 8;
/// Single-key requests in flight: deletes when the server lacks
/// DeleteObjects, and the copies of a move.
const SINGLE_KEY_REQUESTS_IN_FLIGHT: usize = 16;
/// The largest object one CopyObject request copies; larger ones are copied
/// in parts of this size. S3's limit for both.
pub const COPY_PART_SIZE: u64 = 5 << 30;
/// The most parts a multipart upload may have, and the least size of a part
/// but the last.
const MAX_PARTS: u64 = 10_000;
const MIN_PART_SIZE: u64 = 5 << 20;
/// The largest part copied by one UploadPartCopy: well inside one
/// request's time limit, where a 5 GiB part might not be.
const LARGEST_COPY_PART: u64 = 512 << 20;
/// UploadPartCopy requests in flight for one object.
const COPY_PARTS_IN_FLIGHT: usize = 4;
/// What a CopySource must escape: everything but unreserved characters and `/`.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A bucket prefix holding one DataJoint store.
pub struct S3Store {
    name: String,
    bucket: String,
    /// `location` with a trailing `/`, or empty.
    root: String,
    client: Client,
    runtime: tokio::runtime::Runtime,
    list_concurrency: usize,
    /// Set once the server has answered DeleteObjects with "not implemented".
    single_key_deletes: AtomicBool,
    /// Objects above this many bytes are moved by multipart copy.
    copy_part_size: u64,
    /// Where the credentials came from, named when access is denied.
    credential_source: &'static str,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The full text of an SDK error (code, message, cause), without secrets.
fn describe<E: std::error::Error + 'static, R: std::fmt::Debug>(err: &SdkError<E, R>) -> String {
    DisplayErrorContext(err).to_string()
}

impl S3Store {
    /// Connects to the store's bucket and checks that it can be reached.
    pub fn open(spec: &StoreSpec, list_concurrency: usize) -> Result<Self> {
        let s3 = spec
            .s3
            .as_ref()
            .ok_or_else(|| Error::Config(format!("store {:?} has no S3 settings", spec.name)))?;
        let runtime = crate::runtime::new("djgc-s3")?;
        let endpoint = if s3.endpoint.contains("://") {
            s3.endpoint.clone()
        } else {
            let scheme = if s3.secure { "https" } else { "http" };
            format!("{scheme}://{}", s3.endpoint)
        };

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(RegionProviderChain::default_provider().or_else(Region::new("us-east-1")));
        let credential_source = match (&s3.access_key, &s3.secret_key) {
            (Some(access), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    access.expose(),
                    secret.expose(),
                    None,
                    None,
                    "datajoint-config",
                ));
                "access_key/secret_key of the DataJoint store config"
            }
            _ => "the AWS default credential chain (environment, profile, instance role)",
        };
        let shared = runtime.block_on(loader.load());
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            )
            // Checksums only where S3 requires them (DeleteObjects): not every
            // S3-compatible server knows the newer checksum headers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        let client = Client::from_conf(config);

        let location = spec.location.trim_matches('/');
        let store = S3Store {
            name: spec.name.clone(),
            bucket: s3.bucket.clone(),
            root: if location.is_empty() {
                String::new()
            } else {
                format!("{location}/")
            },
            client,
            runtime,
            list_concurrency: list_concurrency.max(1),
            single_key_deletes: AtomicBool::new(false),
            copy_part_size: COPY_PART_SIZE,
            credential_source,
        };
        store.check_bucket(&endpoint)?;
        Ok(store)
    }

    /// HeadBucket, turning the usual failures into errors that say what to fix.
    fn check_bucket(&self, endpoint: &str) -> Result<()> {
        let outcome = self
            .runtime
            .block_on(self.client.head_bucket().bucket(&self.bucket).send());
        let Err(err) = outcome else { return Ok(()) };
        let status = err.raw_response().map(|r| r.status().as_u16());
        let context = format!(
            "store {:?}: HeadBucket on bucket {:?} at {endpoint}",
            self.name, self.bucket
        );
        let reason = match (&err, status) {
            (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => {
                format!("cannot reach the endpoint: {}", describe(&err))
            }
            (_, Some(404)) => "the bucket does not exist".to_string(),
            (_, Some(401 | 403)) => self.denied(&describe(&err)),
            _ => describe(&err),
        };
        Err(Error::Config(format!("{context}: {reason}")))
    }

    /// An access denial, with where the credentials came from.
    fn denied(&self, error: &str) -> String {
        format!(
            "access denied: check the credentials (from {}) and the bucket policy ({error})",
            self.credential_source
        )
    }

    /// The kind and text of a failed request; an access denial names where
    /// the credentials came from.
    fn explain<E: std::error::Error + 'static>(
        &self,
        err: &SdkError<E, HttpResponse>,
    ) -> (StoreErrorKind, String) {
        match err.raw_response().map(|r| r.status().as_u16()) {
            Some(401 | 403) => (StoreErrorKind::AccessDenied, self.denied(&describe(err))),
            Some(404) => (StoreErrorKind::NotFound, describe(err)),
            Some(429 | 503) => (StoreErrorKind::Throttled, describe(err)),
            _ => (StoreErrorKind::Other, describe(err)),
        }
    }

    /// `operation` on `key` failed with `err`.
    fn failure<E: std::error::Error + 'static>(
        &self,
        operation: &'static str,
        key: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> StoreError {
        let (kind, message) = self.explain(err);
        StoreError::new(operation, key, message).with_kind(kind)
    }

    fn bucket_key(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    /// Copies objects larger than `bytes` in parts (default
    /// [`COPY_PART_SIZE`], S3's limit; tests use small parts) of that size
    /// or 512 MiB, whichever is smaller. Parts are never smaller than S3's
    /// least, 5 MiB.
    pub fn with_copy_part_size(mut self, bytes: u64) -> Self {
        self.copy_part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// Moves one object: unless something is at `to`, a server-side copy
    /// of the version of `from` looked at (its ETag), then the source
    /// deleted. A crash in between leaves both copies.
    async fn move_object(&self, from: &str, to: &str) -> Result<Moved, StoreError> {
        if self.head_object(to).await?.is_some() {
            return Ok(Moved::TargetExists);
        }
        let Some(head) = self.head_output("move", from).await? else {
            return Ok(Moved::SourceMissing);
        };
        let etag = head.e_tag().ok_or_else(|| {
            StoreError::new("move", from, "the server gave no ETag to pin the copy to")
        })?;
        let size = head.content_length().unwrap_or(0).max(0) as u64;
        let source = format!(
            "{}/{}",
            self.bucket,
            utf8_percent_encode(&self.bucket_key(from), COPY_SOURCE)
        );
        // The copy's own ETag, to take back exactly it if need be.
        let copy_etag = if size > self.copy_part_size {
            self.copy_in_parts(from, to, &source, &head, size).await?
        } else {
            let copied = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(self.bucket_key(to))
                .copy_source(&source)
                .copy_source_if_match(etag)
                .send()
                .await;
            match copied {
                Ok(out) => out
                    .copy_object_result()
                    .and_then(|r| r.e_tag())
                    .map(str::to_string),
                Err(e) if e.code() == Some("NoSuchKey") => return Ok(Moved::SourceMissing),
                Err(e) => return Err(self.failure("copy", from, &e)),
            }
        };
        // Only the version copied is deleted: a writer that replaced it
        // since keeps the new version where it is.
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.bucket_key(from))
            .if_match(etag)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(Moved::Done),
            // Gone meanwhile: the copy is all that is left of it.
            Err(e) if e.code() == Some("NoSuchKey") => Ok(Moved::Done),
            Err(e) if e.code() == Some("PreconditionFailed") => {
                // The copy holds the old version, which nothing needs: taken
                // back (only if it is still that copy), so a restore never
                // puts it over the new one.
                let undone = match copy_etag {
                    Some(copy_etag) => self
                        .client
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(self.bucket_key(to))
                        .if_match(copy_etag)
                        .send()
                        .await
                        .is_ok(),
                    None => false,
                };
                let why = match undone {
                    true => "it was written again while being moved, so it was left in place",
                    false => {
                        "it was written again while being moved, so it was left in place \
                         (a copy of its old version stays at the target)"
                    }
                };
                Err(StoreError::new("move", from, why))
            }
            Err(e) => Err(self.failure("delete", from, &e)),
        }
    }

    /// Copies `source` (`size` bytes, the version `head` describes) onto
    /// `to` as a multipart upload of ranges, with the headers and user
    /// metadata CopyObject would carry over; on any failure the upload is
    /// aborted, so no part of it becomes an object. Returns the new
    /// object's ETag, if the server gave one.
    async fn copy_in_parts(
        &self,
        from: &str,
        to: &str,
        source: &str,
        head: &HeadObjectOutput,
        size: u64,
    ) -> Result<Option<String>, StoreError> {
        let etag = head.e_tag().unwrap_or_default();
        let target = self.bucket_key(to);
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&target)
            .set_content_type(head.content_type().map(str::to_string))
            .set_content_encoding(head.content_encoding().map(str::to_string))
            .set_content_disposition(head.content_disposition().map(str::to_string))
            .set_content_language(head.content_language().map(str::to_string))
            .set_cache_control(head.cache_control().map(str::to_string))
            .set_metadata(head.metadata().cloned())
            .send()
            .await
            .map_err(|e| self.failure("copy", from, &e))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| StoreError::new("copy", from, "the server gave no upload id"))?;
        // Large enough that no upload needs more parts than S3 allows.
        let part_size = self
            .copy_part_size
            .min(LARGEST_COPY_PART)
            .max(size.div_ceil(MAX_PARTS));
        let copied: Result<Vec<CompletedPart>, StoreError> =
            stream::iter((0..size.div_ceil(part_size)).map(|part| {
                let first = part * part_size;
                let last = (first + part_size).min(size) - 1;
                // At most MAX_PARTS parts: the number fits.
                (part as i32 + 1, format!("bytes={first}-{last}"))
            }))
            .map(|(number, range)| {
                let request = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(&target)
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(source)
                    .copy_source_range(range)
                    .copy_source_if_match(etag);
                async move {
                    let answer = request
                        .send()
                        .await
                        .map_err(|e| self.failure("copy", from, &e))?;
                    Ok(CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(
                            answer
                                .copy_part_result()
                                .and_then(|r| r.e_tag())
                                .map(String::from),
                        )
                        .build())
                }
            })
            .buffered(COPY_PARTS_IN_FLIGHT)
            .try_collect()
            .await;
        let completed = match copied {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&target)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|done| done.e_tag().map(str::to_string))
                .map_err(|e| self.failure("copy", from, &e)),
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Best effort: an upload left behind holds no object, and a
            // bucket lifecycle rule for incomplete uploads removes it.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&target)
                .upload_id(upload_id)
                .send()
                .await;
        }
        completed
    }

    /// The HEAD answer for the object at `key`, or `None` when there is
    /// none; a failure is reported as part of `operation`.
    async fn head_output(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<Option<HeadObjectOutput>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.bucket_key(key))
            .send()
            .await
        {
            Ok(head) => Ok(Some(head)),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(self.failure(operation, key, &e)),
        }
    }

    /// The size and modification time of the object at `key`, or `None`
    /// when there is none.
    async fn head_object(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.head_output("head", key).await?.map(|head| ObjectMeta {
            key: key.to_string(),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            modified: uploaded(head.last_modified()),
        }))
    }

    async fn delete_batch(&self, keys: &[&str]) -> Vec<Result<Deleted, StoreError>> {
        if !self.single_key_deletes.load(Ordering::Relaxed) {
            match self.delete_objects(keys).await {
                Some(results) => return results,
                None => self.single_key_deletes.store(true, Ordering::Relaxed),
            }
        }
        stream::iter(keys)
            .map(|key| async move {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.bucket_key(key))
                    .send()
                    .await
                    .map(|_| Deleted::Removed)
                    .map_err(|e| self.failure("delete", key, &e))
            })
            .buffered(SINGLE_KEY_REQUESTS_IN_FLIGHT)
            .collect()
            .await
    }

    /// One DeleteObjects request; `None` when the server does not implement it.
    async fn delete_objects(&self, keys: &[&str]) -> Option<Vec<Result<Deleted, StoreError>>> {
        let objects: Vec<ObjectIdentifier> = keys
            .iter()
            .map(|k| {
                ObjectIdentifier::builder()
                    .key(self.bucket_key(k))
                    .build()
                    .expect("key is set")
            })
            .collect();
        // Not quiet: each key counts as deleted only when the answer says so.
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(false)
            .build()
            .expect("objects are set");
        let response = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await;
        match response {
            Ok(output) => {
                fn store_key<'k>(root: &str, key: Option<&'k str>) -> Option<&'k str> {
                    key?.strip_prefix(root)
                }
                let failed: std::collections::HashMap<&str, (StoreErrorKind, String)> = output
                    .errors()
                    .iter()
                    .filter_map(|e| {
                        let key = store_key(&self.root, e.key())?;
                        let code = e.code().unwrap_or("error");
                        let error = format!("{code}: {}", e.message().unwrap_or(""));
                        let error = match code {
                            "AccessDenied" => (StoreErrorKind::AccessDenied, self.denied(&error)),
                            "NoSuchKey" => (StoreErrorKind::NotFound, error),
                            "SlowDown" => (StoreErrorKind::Throttled, error),
                            _ => (StoreErrorKind::Other, error),
                        };
                        Some((key, error))
                    })
                    .collect();
                let deleted: std::collections::HashSet<&str> = output
                    .deleted()
                    .iter()
                    .filter_map(|d| store_key(&self.root, d.key()))
                    .collect();
                Some(
                    keys.iter()
                        .map(|key| match failed.get(key) {
                            Some((kind, message)) => {
                                Err(StoreError::new("delete", *key, message.clone())
                                    .with_kind(*kind))
                            }
                            None if deleted.contains(key) => Ok(Deleted::Removed),
                            None => Err(StoreError::new(
                                "delete",
                                *key,
                                "the DeleteObjects answer does not say this key was deleted",
                            )),
                        })
                        .collect(),
                )
            }
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                if status == Some(501) || err.code() == Some("NotImplemented") {
                    return None;
                }
                let (kind, message) = self.explain(&err);
                Some(
                    keys.iter()
                        .map(|key| {
                            Err(StoreError::new("delete", *key, message.clone()).with_kind(kind))
                        })
                        .collect(),
                )
            }
        }
    }
}

/// When an object arrived, from its `LastModified`: an object without one
/// counts as just uploaded (too young to judge), never as from 1970.
fn uploaded(last_modified: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    last_modified
        .and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or_else(SystemTime::now)
}

impl PageLister for S3Store {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<Page, StoreError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_string))
            .set_continuation_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| self.failure("list", prefix, &e))?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectMeta {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: uploaded(o.last_modified()),
                })
            })
            .collect();
        let next = match (output.is_truncated(), output.next_continuation_token()) {
            (Some(true), Some(token)) => Some(token.to_string()),
            (Some(true), None) => {
                return Err(StoreError::new(
                    "list",
                    prefix,
                    "the server marked a page truncated but gave no continuation token, so \
                     the rest of the listing cannot be read",
                ))
            }
            _ => None,
        };
        Ok(Page { objects, next })
    }
}

impl Store for S3Store {
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
            self.runtime.handle().block_on(self.delete_batch(inside))
        })
    }

    fn rename(
        &self,
        from_prefix: &str,
        moves: &[(String, String)],
    ) -> Vec<Result<Moved, StoreError>> {
        self.runtime.handle().block_on(move_each(
            from_prefix,
            moves,
            SINGLE_KEY_REQUESTS_IN_FLIGHT,
            |from, to| self.move_object(from, to),
        ))
    }

    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.bucket_key(key))
            .body(ByteStream::from(body));
        self.runtime
            .handle()
            .block_on(request.send())
            .map(drop)
            .map_err(|e| self.failure("put", key, &e))
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = self.bucket_key(prefix);
        self.runtime.handle().block_on(async {
            let mut folders = Vec::new();
            let mut token = None;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&full)
                    .delimiter("/")
                    .set_continuation_token(token)
                    .send()
                    .await
                    .map_err(|e| self.failure("list", prefix, &e))?;
                folders.extend(page.common_prefixes().iter().filter_map(|p| {
                    let name = p.prefix()?.strip_prefix(full.as_str())?;
                    Some(name.trim_end_matches('/').to_string())
                }));
                match (page.is_truncated(), page.next_continuation_token()) {
                    (Some(true), Some(next)) => token = Some(next.to_string()),
                    (Some(true), None) => {
                        return Err(StoreError::new(
                            "list",
                            prefix,
                            "the server marked a page truncated but gave no continuation token",
                        ))
                    }
                    _ => break,
                }
            }
            folders.sort();
            Ok(folders)
        })
    }

    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>> {
        self.runtime.handle().block_on(
            stream::iter(keys)
                .map(|key| self.head_object(key))
                .buffered(self.list_concurrency)
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut body = Capped(Vec::new());
        match self.download(key, &mut body) {
            Ok(found) => Ok(found.then_some(body.0)),
            Err(_) if body.0.len() as u64 > SMALL_OBJECT_LIMIT => Err(too_large(key)),
            Err(e) => Err(e),
        }
    }
}

/// A buffer that refuses to grow past [`SMALL_OBJECT_LIMIT`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(chunk);
        if self.0.len() as u64 > SMALL_OBJECT_LIMIT {
            return Err(std::io::Error::other("object too large"));
        }
        Ok(chunk.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl S3Store {
    /// Streams the object at `key` into `out` as it arrives (a large file,
    /// such as an inventory's, never held whole); `false` when there is none.
    pub fn download(&self, key: &str, out: &mut dyn std::io::Write) -> Result<bool, StoreError> {
        self.runtime.handle().block_on(async {
            let response = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.bucket_key(key))
                .send()
                .await;
            let mut body = match response {
                Ok(output) => output.body,
                Err(e) if e.code() == Some("NoSuchKey") => return Ok(false),
                Err(e) => return Err(self.failure("get", key, &e)),
            };
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::new("get", key, e))?;
                out.write_all(&chunk)
                    .map_err(|e| StoreError::new("get", key, e))?;
            }
            Ok(true)
        })
    }
}
