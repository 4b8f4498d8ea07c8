//! The order queue (SQS; in memory for unit tests).

use flashflow::ports::OrderPublisher;
use std::time::Duration;

/// A publisher, and how to count what reached its queue (now, and what is due later).
pub struct Queue<P> {
    pub queue: P,
}

/// Every behaviour of the publisher's contract as a test of `$make` (an async expression giving
/// a [`Queue`]).
#[macro_export]
macro_rules! publisher_contract {
    ($make:expr) => {
        $crate::contract_tests!(
            publisher,
            $make,
            [
                a_message_is_taken_now,
                many_messages_are_taken_at_once_past_a_batch_of_ten,
                messages_are_taken_for_later,
            ]
        );
    };
}

pub async fn a_message_is_taken_now<P: OrderPublisher>(t: &Queue<P>) {
    t.queue.publish("contract-1").await.unwrap();
}

pub async fn many_messages_are_taken_at_once_past_a_batch_of_ten<P: OrderPublisher>(t: &Queue<P>) {
    let many: Vec<String> = (0..12).map(|i| format!("contract-many-{i}")).collect();
    assert!(t.queue.publish_many(&many).await.is_empty());
}

pub async fn messages_are_taken_for_later<P: OrderPublisher>(t: &Queue<P>) {
    let later = ["contract-later-1".to_owned(), "contract-later-2".to_owned()];
    let refused = t.queue.publish_later(&later, Duration::from_secs(1)).await;
    assert!(refused.is_empty());
}

#[cfg(test)]
mod on_memory {
    use super::Queue;
    use crate::memory::MemoryQueue;

    #[tokio::test]
    async fn the_memory_queue_holds_what_was_sent_now() {
        let t = Queue {
            queue: MemoryQueue::default(),
        };
        super::a_message_is_taken_now(&t).await;
        super::many_messages_are_taken_at_once_past_a_batch_of_ten(&t).await;
        super::messages_are_taken_for_later(&t).await;
        assert_eq!((t.queue.sent().len(), t.queue.later().len()), (13, 2));
    }

    crate::publisher_contract!(async {
        Queue {
            queue: MemoryQueue::default(),
        }
    });
}
