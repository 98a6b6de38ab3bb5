//! Group submission for round trips that take many items at once: items that arrive while a
//! batch is on its way wait and go together in the next one, so N concurrent callers cost about
//! one round trip per round-trip time instead of N. Commit-log appends use it (one request per
//! volume and subvolume for every id waiting), and so does clearing unlogged marks (one index
//! commit for every mark waiting).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

type Waiting<T, R> = Vec<(T, oneshot::Sender<R>)>;
/// Per key, the items waiting; a key is present exactly while a task is sending its batches.
type Queues<K, T, R> = Arc<Mutex<HashMap<K, Waiting<T, R>>>>;

/// Batches of `T` per key `K`, each answered with one outcome `R` for all its items.
pub struct Batcher<K, T, R> {
    queues: Queues<K, T, R>,
    max_batch: usize,
    max_waiting: usize,
}

impl<K, T, R> Clone for Batcher<K, T, R> {
    fn clone(&self) -> Self {
        Self { queues: self.queues.clone(), max_batch: self.max_batch, max_waiting: self.max_waiting }
    }
}

impl<K, T, R> std::fmt::Debug for Batcher<K, T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("max_batch", &self.max_batch).finish_non_exhaustive()
    }
}

fn lock<K, T, R>(queues: &Queues<K, T, R>) -> MutexGuard<'_, HashMap<K, Waiting<T, R>>> {
    queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K, T, R> Batcher<K, T, R>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    R: Clone + Send + 'static,
{
    /// Batches of at most `max_batch` items; at most `max_waiting` items wait per key.
    pub fn new(max_batch: usize, max_waiting: usize) -> Self {
        Self { queues: Arc::default(), max_batch: max_batch.max(1), max_waiting }
    }

    /// Queues `item` under `key`. The receiver gets the outcome of the batch the item went in;
    /// it is closed without one if `max_waiting` items were already waiting. If no batch of
    /// `key` is on its way, a task starts sending them with `send`, and keeps going until none
    /// wait (so `send` must not wait forever: the callers wait for it).
    pub fn submit<F, Fut>(&self, key: K, item: T, send: F) -> oneshot::Receiver<R>
    where
        F: Fn(K, Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        let (answer, outcome) = oneshot::channel();
        let mut queues = lock(&self.queues);
        if let Some(waiting) = queues.get_mut(&key) {
            if waiting.len() < self.max_waiting {
                waiting.push((item, answer));
            }
            return outcome;
        }
        queues.insert(key.clone(), vec![(item, answer)]);
        drop(queues);
        let sender = Sender { queues: self.queues.clone(), key, max_batch: self.max_batch, ended: false };
        tokio::spawn(sender.run(send));
        outcome
    }
}

/// The task sending one key's batches. It takes the key out when it finds nothing waiting.
/// Dropped before that (a panic, or its task cancelled at shutdown), it takes the key out
/// itself, so the next submission starts a new sender, and whatever still waits sees its
/// receiver closed.
struct Sender<K: Hash + Eq, T, R> {
    queues: Queues<K, T, R>,
    key: K,
    max_batch: usize,
    /// Whether it took the key out: from then on the key may belong to a new sender.
    ended: bool,
}

impl<K: Hash + Eq + Clone, T, R: Clone> Sender<K, T, R> {
    async fn run<F, Fut>(mut self, send: F)
    where
        F: Fn(K, Vec<T>) -> Fut,
        Fut: Future<Output = R>,
    {
        while let Some(batch) = self.next_batch() {
            let (items, answers): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
            let outcome = send(self.key.clone(), items).await;
            for answer in answers {
                let _ = answer.send(outcome.clone());
            }
        }
    }

    fn next_batch(&mut self) -> Option<Waiting<T, R>> {
        let mut queues = lock(&self.queues);
        let waiting = queues.get_mut(&self.key)?;
        if waiting.is_empty() {
            queues.remove(&self.key);
            self.ended = true;
            return None;
        }
        let n = waiting.len().min(self.max_batch);
        Some(waiting.drain(..n).collect())
    }
}

impl<K: Hash + Eq, T, R> Drop for Sender<K, T, R> {
    fn drop(&mut self) {
        if !self.ended {
            lock(&self.queues).remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// The batches sends carried, by key.
    type Seen = Arc<Mutex<Vec<(u8, Vec<u32>)>>>;

    /// A batcher whose sends take a while and record the batches they carried.
    fn recording() -> (Batcher<u8, u32, usize>, Seen) {
        (Batcher::new(3, 5), Arc::default())
    }

    fn send(
        seen: &Seen,
    ) -> impl Fn(u8, Vec<u32>) -> std::pin::Pin<Box<dyn Future<Output = usize> + Send>> + Send + 'static {
        let seen = seen.clone();
        move |key, items| {
            let seen = seen.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let n = items.len();
                seen.lock().unwrap().push((key, items));
                n
            })
        }
    }

    #[tokio::test]
    async fn items_arriving_while_a_batch_is_out_go_together_in_the_next() {
        let (batcher, seen) = recording();
        let first = batcher.submit(1, 0, send(&seen));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let rest: Vec<_> = (1..=4).map(|i| batcher.submit(1, i, send(&seen))).collect();
        let other_key = batcher.submit(2, 9, send(&seen));
        assert_eq!(first.await.unwrap(), 1, "the first goes at once, alone");
        let outcomes: Vec<usize> = futures::future::join_all(rest).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes, [3, 3, 3, 1], "the next four go in batches of at most three, in order");
        assert_eq!(other_key.await.unwrap(), 1);
        let mut batches = seen.lock().unwrap().clone();
        batches.sort();
        assert_eq!(batches, [(1, vec![0]), (1, vec![1, 2, 3]), (1, vec![4]), (2, vec![9])]);
        assert!(lock(&batcher.queues).is_empty(), "no sender is left once nothing waits");
    }

    #[tokio::test]
    async fn beyond_the_waiting_bound_items_are_refused_not_queued() {
        let (batcher, seen) = recording();
        let _first = batcher.submit(1, 0, send(&seen));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting: Vec<_> = (1..=7).map(|i| batcher.submit(1, i, send(&seen))).collect();
        let outcomes: Vec<bool> = futures::future::join_all(waiting).await.iter().map(Result::is_ok).collect();
        assert_eq!(outcomes, [true, true, true, true, true, false, false]);
    }

    /// A sender that found nothing waiting and ended must not, as it goes, take away the queue a
    /// new sender started for items submitted right after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_is_answered_while_senders_come_and_go() {
        let batcher: Batcher<u8, u32, usize> = Batcher::new(4, 10_000);
        let tasks = (0..8).map(|_| {
            let batcher = batcher.clone();
            tokio::spawn(async move {
                let mut answered = 0;
                for i in 0..500 {
                    let outcome = batcher.submit(1, i, |_, items: Vec<u32>| async move { items.len() });
                    answered += usize::from(outcome.await.is_ok());
                }
                answered
            })
        });
        let answered: Vec<usize> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(answered, [500; 8]);
    }

    #[tokio::test]
    async fn a_sender_that_dies_closes_what_waits_and_the_next_submission_starts_anew() {
        let batcher: Batcher<u8, u32, usize> = Batcher::new(10, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        let dying = {
            let calls = calls.clone();
            move |_, _| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { panic!("the send failed hard") }
            }
        };
        let first = batcher.submit(1, 0, dying.clone());
        assert!(first.await.is_err(), "no outcome, the receiver closes");
        assert!(lock(&batcher.queues).is_empty());
        let again = batcher.submit(1, 1, |_, items: Vec<u32>| async move { items.len() });
        assert_eq!(again.await.unwrap(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
