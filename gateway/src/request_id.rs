//! The id of the S3 request a task works for, carried to the volumes (in
//! [`REQUEST_ID_HEADER`]) so that a request can be followed from the gateway's log into every
//! volume's. It lives in a task-local set around each S3 request; tasks a request spawns
//! take it along through [`spawn`].

use std::future::Future;

/// Header carrying the request id to a volume.
pub const REQUEST_ID_HEADER: &str = volumed::http::REQUEST_ID_HEADER;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` as part of the request `id`.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The id of the request the current task works for, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `tokio::spawn`, keeping the current request id in the new task.
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current() {
        Some(id) => tokio::spawn(REQUEST_ID.scope(id, work)),
        None => tokio::spawn(work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_follows_spawned_tasks() {
        assert_eq!(current(), None);
        let seen = scope("ABC".into(), async { spawn(async { current() }).await.unwrap() }).await;
        assert_eq!(seen.as_deref(), Some("ABC"));
    }
}
