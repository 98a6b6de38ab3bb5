//! What is known about the S3 request a task works for: its id, carried to the volumes (in
//! [`REQUEST_ID_HEADER`]) so that a request can be followed from the gateway's log into every
//! volume's, and what the access check learnt (operation, bucket, key, access key id) for the
//! access log line. It lives in a task-local set around each S3 request; tasks a request
//! spawns take it along through [`spawn`].

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Header carrying the request id to a volume.
pub const REQUEST_ID_HEADER: &str = volumed::http::REQUEST_ID_HEADER;

/// What the access check found out about a request.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The S3 operation (`GetObject`, …).
    pub op: Option<String>,
    /// Bucket, if the request names one.
    pub bucket: Option<String>,
    /// Key, if the request names one.
    pub key: Option<String>,
    /// The access key id that signed it (never the secret).
    pub access_key: Option<String>,
}

/// One S3 request's context.
#[derive(Debug, Default)]
pub struct RequestContext {
    /// The request id (`x-amz-request-id`).
    pub id: String,
    access: Mutex<Access>,
}

impl RequestContext {
    /// A context for request `id`.
    pub fn new(id: String) -> Arc<Self> {
        Arc::new(Self { id, access: Mutex::default() })
    }

    /// What the access check recorded.
    pub fn access(&self) -> Access {
        self.access.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Runs `work` as part of the request `context`.
pub async fn scope<F: Future>(context: Arc<RequestContext>, work: F) -> F::Output {
    REQUEST.scope(context, work).await
}

/// The id of the request the current task works for, if any.
pub fn current() -> Option<String> {
    REQUEST.try_with(|r| r.id.clone()).ok()
}

/// Records what the access check learnt about the current request.
pub fn note_access(access: Access) {
    let _ = REQUEST.try_with(|r| {
        if let Ok(mut slot) = r.access.lock() {
            *slot = access;
        }
    });
}

/// `tokio::spawn`, keeping the current request in the new task.
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match REQUEST.try_with(Arc::clone) {
        Ok(context) => tokio::spawn(REQUEST.scope(context, work)),
        Err(_) => tokio::spawn(work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_request_follows_spawned_tasks() {
        assert_eq!(current(), None);
        let context = RequestContext::new("ABC".into());
        let seen = scope(context.clone(), async {
            spawn(async {
                note_access(Access { op: Some("GetObject".into()), ..Access::default() });
                current()
            })
            .await
            .unwrap()
        })
        .await;
        assert_eq!(seen.as_deref(), Some("ABC"));
        assert_eq!(context.access().op.as_deref(), Some("GetObject"));
    }
}
