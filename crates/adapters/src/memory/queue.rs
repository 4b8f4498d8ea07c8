//! The order queue in memory.

use super::{lock, switched_off};
use flashflow::ports::{OrderPublisher, PublishError, QueueDepths};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The order queue in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryQueue {
    sent: Arc<Mutex<Vec<String>>>,
    later: Arc<Mutex<Vec<(String, Duration)>>>,
    down: Arc<AtomicBool>,
}

impl MemoryQueue {
    /// Every message accepted so far, in order.
    pub fn sent(&self) -> Vec<String> {
        lock(&self.sent).clone()
    }

    /// Every message sent for later, with its delay.
    pub fn later(&self) -> Vec<(String, Duration)> {
        lock(&self.later).clone()
    }

    /// Refuse every message (or accept again).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

impl OrderPublisher for MemoryQueue {
    async fn publish(&self, message: &str) -> Result<(), PublishError> {
        if self.is_down() {
            return Err(PublishError(switched_off("memory queue")));
        }
        lock(&self.sent).push(message.to_owned());
        Ok(())
    }

    async fn publish_many(&self, messages: &[String]) -> Vec<usize> {
        if self.is_down() {
            return (0..messages.len()).collect();
        }
        lock(&self.sent).extend(messages.iter().cloned());
        Vec::new()
    }

    async fn publish_later(&self, messages: &[String], delay: Duration) -> Vec<usize> {
        if self.is_down() {
            return (0..messages.len()).collect();
        }
        lock(&self.later).extend(messages.iter().map(|m| (m.clone(), delay)));
        Vec::new()
    }
}

impl QueueDepths for MemoryQueue {
    /// Nothing consumes this queue: every message accepted is still in it. No DLQ.
    async fn depths(&self) -> (Option<i64>, Option<i64>) {
        if self.is_down() {
            return (None, None);
        }
        let n = lock(&self.sent).len() + lock(&self.later).len();
        (i64::try_from(n).ok(), Some(0))
    }
}
