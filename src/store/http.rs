//! What the GCS and Azure stores share: one HTTP client, retries with
//! backoff, and the `multipart/mixed` batches both services use to delete
//! many objects in one request.
//!
//! Both stores send their requests themselves (through `reqwest`, the
//! client `object_store` already brings for their credential chains):
//! see `gcs.rs` and `azure.rs` for why. What must be the same for both is
//! here, so that a throttled request is retried the same way and a batch
//! answer is read the same way whichever service gave it.

use std::time::Duration;

use super::{Deleted, StoreError, StoreErrorKind};
use crate::error::{Error, Result};

/// Attempts per request before a page, a batch or a key counts as failed.
pub const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const LONGEST_BACKOFF: Duration = Duration::from_secs(20);

/// The HTTP client of a GCS or Azure store.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
}

/// A request that failed for good: the last status (none when the server
/// was never reached) and what it said.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    pub message: String,
}

impl Failure {
    /// The error for `operation` on `key` of a store whose credentials came
    /// from `credential_source`: a denial says where they came from and
    /// what else to check (`permissions`, such as "the bucket's
    /// permissions").
    pub fn into_store_error(
        self,
        operation: &'static str,
        key: &str,
        credential_source: &str,
        permissions: &str,
    ) -> StoreError {
        if self.kind() == StoreErrorKind::AccessDenied {
            let message = denied(credential_source, permissions, &self.message);
            return StoreError::new(operation, key, message)
                .with_kind(StoreErrorKind::AccessDenied);
        }
        self.into_error(operation, key)
    }

    /// How the collector should take the failure.
    pub fn kind(&self) -> StoreErrorKind {
        status_kind(self.status)
    }

    /// The error for `operation` on `key`.
    pub fn into_error(self, operation: &'static str, key: &str) -> StoreError {
        let kind = self.kind();
        StoreError::new(operation, key, self.message).with_kind(kind)
    }
}

/// An access denial, with where the credentials came from.
pub fn denied(credential_source: &str, permissions: &str, error: &str) -> String {
    format!("access denied: check the credentials (from {credential_source}) and {permissions} ({error})")
}

/// The kind of a failure with this status.
pub fn status_kind(status: Option<u16>) -> StoreErrorKind {
    match status {
        Some(401 | 403) => StoreErrorKind::AccessDenied,
        Some(404) => StoreErrorKind::NotFound,
        Some(429 | 503) => StoreErrorKind::Throttled,
        _ => StoreErrorKind::Other,
    }
}

/// Whether a request answered with `status` may succeed when sent again:
/// throttling, timeouts and server faults.
pub fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The pause before attempt `attempt + 1`: exponential, capped, with
/// jitter so that workers throttled together do not return together.
pub fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1 << attempt.min(10));
    let capped = base.min(LONGEST_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Between half and all of the capped pause.
    capped / 2 + capped.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

impl Http {
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(Http { client })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `build` makes (a fresh one each attempt, so that
    /// signatures carry the time they are sent), retrying throttling,
    /// server faults and lost connections with backoff. Any other answer
    /// is returned as it is, success or not: `404` means different things
    /// to different callers.
    pub async fn send<F, Fut>(&self, build: F) -> std::result::Result<reqwest::Response, Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<reqwest::Request, Failure>>,
    {
        let mut attempt = 0;
        loop {
            let request = build().await?;
            let outcome = self.client.execute(request).await;
            attempt += 1;
            let last = attempt >= MAX_ATTEMPTS;
            match outcome {
                Ok(response) if retryable(response.status().as_u16()) && !last => {}
                Ok(response) => return Ok(response),
                Err(e) if last || e.is_builder() => {
                    return Err(Failure {
                        status: None,
                        message: describe_transport(e),
                    })
                }
                Err(_) => {}
            }
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
    }
}

/// A transport error with its causes (reqwest's own text leaves them out).
/// The URL is left out: a shared access signature may be in it.
pub fn describe_transport(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The body of an answer that was not a success, for a message: its start,
/// on one line.
pub async fn failure(response: reqwest::Response) -> Failure {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Failure {
        status: Some(status.as_u16()),
        message: format!("HTTP {status}: {}", excerpt(&body)),
    }
}

/// The body of a successful download, refused past
/// [`super::SMALL_OBJECT_LIMIT`] bytes (read no further than that).
pub async fn read_capped(
    key: &str,
    mut response: reqwest::Response,
) -> std::result::Result<Vec<u8>, StoreError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| StoreError::new("get", key, describe_transport(e)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > super::SMALL_OBJECT_LIMIT {
            return Err(super::too_large(key));
        }
    }
    Ok(body)
}

/// The first few hundred characters of `text`, on one line.
pub fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Deletes `keys` (one batch's worth) with `send_batch`, which sends the
/// deletes of the keys it is given (the `attempt`th time) as one batch
/// request and returns the answers, numbered as the keys were. A key is
/// `Removed` on a success, `Missing` on 404; throttled and failed keys are
/// sent again (a new batch of just those) with backoff; a key the answer
/// leaves out failed. One outcome per key, in order.
pub async fn delete_in_batches<'k, S, Fut>(
    keys: &[&'k str],
    send_batch: S,
    fail: impl Fn(&str, Failure) -> StoreError,
) -> Vec<std::result::Result<Deleted, StoreError>>
where
    S: Fn(Vec<&'k str>, u32) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Vec<PartAnswer>, Failure>>,
{
    let mut outcomes: Vec<Option<std::result::Result<Deleted, StoreError>>> =
        keys.iter().map(|_| None).collect();
    for attempt in 0..MAX_ATTEMPTS {
        let pending: Vec<usize> = (0..keys.len()).filter(|&i| outcomes[i].is_none()).collect();
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let answers = match send_batch(pending.iter().map(|&i| keys[i]).collect(), attempt).await {
            Ok(answers) => answers,
            Err(failure) => {
                for &i in &pending {
                    let failure = Failure {
                        status: failure.status,
                        message: failure.message.clone(),
                    };
                    outcomes[i] = Some(Err(fail(keys[i], failure)));
                }
                break;
            }
        };
        let last = attempt + 1 == MAX_ATTEMPTS;
        let mut answered = vec![false; pending.len()];
        for part in answers {
            let Some(&i) = pending.get(part.index) else {
                continue;
            };
            answered[part.index] = true;
            outcomes[i] = match part.status {
                200..=299 => Some(Ok(Deleted::Removed)),
                404 => Some(Ok(Deleted::Missing)),
                status if retryable(status) && !last => None,
                status => Some(Err(fail(
                    keys[i],
                    Failure {
                        status: Some(status),
                        message: format!("HTTP {status}: {}", part.body),
                    },
                ))),
            };
        }
        for (slot, &i) in pending.iter().enumerate() {
            if !answered[slot] {
                outcomes[i] = Some(Err(StoreError::new(
                    "delete",
                    keys[i],
                    "the batch answer does not say this key was deleted",
                )));
            }
        }
    }
    outcomes
        .into_iter()
        .zip(keys)
        .map(|(outcome, key)| {
            outcome.unwrap_or_else(|| {
                Err(
                    StoreError::new("delete", *key, "still throttled after every attempt")
                        .with_kind(StoreErrorKind::Throttled),
                )
            })
        })
        .collect()
}

/// The answers of a batch request, or why there are none.
pub async fn read_batch_answer(
    response: reqwest::Response,
) -> std::result::Result<Vec<PartAnswer>, Failure> {
    if !response.status().is_success() {
        return Err(failure(response).await);
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.map_err(|e| Failure {
        status: None,
        message: format!("unreadable batch answer: {}", describe_transport(e)),
    })?;
    batch_answers(&content_type, &text).map_err(|message| Failure {
        status: None,
        message,
    })
}

/// A `multipart/mixed` body of HTTP requests, each part numbered by its
/// index (`Content-ID`), as both batch APIs take them. Each request ends
/// with the blank line after its headers.
pub fn batch_body(
    boundary: &str,
    requests: &[String],
    content_id: impl Fn(usize) -> String,
) -> String {
    let mut body = String::new();
    for (index, request) in requests.iter().enumerate() {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\
             Content-ID: {}\r\n\r\n{request}\r\n",
            content_id(index)
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

/// One answer inside a batch answer.
#[derive(Debug, PartialEq, Eq)]
pub struct PartAnswer {
    /// The index of the request it answers (from its `Content-ID`).
    pub index: usize,
    pub status: u16,
    /// Its body, shortened, for messages.
    pub body: String,
}

/// The answers of a `multipart/mixed` batch answer whose `Content-Type` is
/// `content_type`. A part without a readable `Content-ID` or status line
/// answers nothing (its request then counts as unanswered, never as done).
pub fn batch_answers(
    content_type: &str,
    body: &str,
) -> std::result::Result<Vec<PartAnswer>, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or_else(|| {
            format!("the batch answer has no boundary (Content-Type {content_type:?})")
        })?;
    let delimiter = format!("--{boundary}");
    let mut answers = Vec::new();
    for part in body.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let mut lines = part.split("\r\n").map(|l| l.trim_end_matches('\n'));
        let mut index = None;
        // The part's own headers, up to the blank line.
        for line in lines.by_ref().skip_while(|l| l.is_empty()) {
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-id") {
                    index = trailing_number(value);
                }
            }
        }
        let status = lines
            .find(|l| !l.is_empty())
            .and_then(|status_line| status_line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok());
        let rest: Vec<&str> = lines.collect();
        if let (Some(index), Some(status)) = (index, status) {
            answers.push(PartAnswer {
                index,
                status,
                body: excerpt(&rest.join(" ")),
            });
        }
    }
    Ok(answers)
}

/// The number a `Content-ID` ends with: `<response-3>` and `3` are both 3.
fn trailing_number(value: &str) -> Option<usize> {
    let value = value.trim().trim_end_matches('>');
    let start = value
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    value[start..].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_are_matched_by_content_id_not_by_position() {
        let body = "--b1\r\nContent-Type: application/http\r\nContent-ID: <response-2>\r\n\r\n\
                    HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"error\":1}\r\n\
                    --b1\r\nContent-Type: application/http\r\nContent-ID: <response-0>\r\n\r\n\
                    HTTP/1.1 204 No Content\r\n\r\n\r\n\
                    --b1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\
                    --b1--\r\n";
        let answers = batch_answers("multipart/mixed; boundary=b1", body).unwrap();
        assert_eq!(answers.len(), 2, "a part without an id answers nothing");
        assert_eq!((answers[0].index, answers[0].status), (2, 404));
        assert!(answers[0].body.contains("error"));
        assert_eq!((answers[1].index, answers[1].status), (0, 204));
        assert!(batch_answers("multipart/mixed", body).is_err());
    }

    #[test]
    fn batch_bodies_number_their_parts() {
        let body = batch_body("xyz", &["DELETE /a HTTP/1.1\r\n".into()], |i| {
            format!("<{i}>")
        });
        assert!(body.starts_with("--xyz\r\n"));
        assert!(body.contains("Content-ID: <0>\r\n\r\nDELETE /a HTTP/1.1\r\n"));
        assert!(body.ends_with("--xyz--\r\n"));
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        assert!(backoff(0) <= FIRST_BACKOFF && backoff(0) >= FIRST_BACKOFF / 2);
        assert!(backoff(30) <= LONGEST_BACKOFF);
    }
}
