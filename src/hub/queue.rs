//! A subscriber's queue: the bounded FIFO of SSE frames between the
//! fan-out, which never waits, and the subscriber's connection.
//!
//! The hub holds one per subscriber, nearly all of them idle, so it is
//! small: a `VecDeque` behind a mutex, shared by the two ends, that
//! allocates only when a frame waits (~100 bytes idle). tokio's bounded mpsc,
//! used before, allocates its first block of 32 slots with the channel:
//! 1.5 KiB per subscriber that never sees an update.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// `cap` frames are waiting: the subscriber cannot keep up.
    Full,
    /// The receiver is gone (the connection closed).
    Closed,
}

/// Frames kept allocated once drained: a queue that held more after a
/// burst gives the memory back.
const KEEP: usize = 4;

/// A queue holding at most `cap` frames.
pub fn queue(cap: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        cap,
        state: Mutex::new(State::default()),
    });
    (Sender(shared.clone()), Receiver(shared))
}

struct Shared {
    cap: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// The receiver's task, parked on an empty queue.
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The hub's end. Dropping it ends the stream once the queued frames are
/// read.
pub struct Sender(Arc<Shared>);

impl Sender {
    /// Queues `frame` without waiting.
    pub fn try_send(&self, frame: Bytes) -> Result<(), TrySendError> {
        let waker = {
            let mut st = self.0.lock();
            if st.receiver_gone {
                return Err(TrySendError::Closed);
            }
            if st.frames.len() >= self.0.cap {
                return Err(TrySendError::Full);
            }
            st.frames.push_back(frame);
            st.waker.take()
        };
        // Woken outside the lock: the receiver may run at once on another
        // thread and take it.
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// The receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.0.lock().receiver_gone
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.0.lock();
            st.sender_gone = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The connection's end: a response body reads it.
pub struct Receiver(Arc<Shared>);

impl Receiver {
    /// The next frame; `None` once the sender is gone and the queue empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut st = self.0.lock();
        if let Some(frame) = st.frames.pop_front() {
            if st.frames.is_empty() && st.frames.capacity() > KEEP {
                st.frames = VecDeque::new();
            }
            return Poll::Ready(Some(frame));
        }
        if st.sender_gone {
            return Poll::Ready(None);
        }
        match &mut st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.receiver_gone = true;
        st.frames = VecDeque::new();
        st.waker = None;
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.0.lock();
        f.debug_struct("Receiver")
            .field("queued", &st.frames.len())
            .field("cap", &self.0.cap)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(rx: &mut Receiver) -> Option<Bytes> {
        std::future::poll_fn(|cx| rx.poll_recv(cx)).await
    }

    fn frame(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[tokio::test]
    async fn bounded_in_order_and_ends_when_the_sender_goes() {
        let (tx, mut rx) = queue(2);
        assert_eq!(tx.try_send(frame("a")), Ok(()));
        assert_eq!(tx.try_send(frame("b")), Ok(()));
        assert_eq!(tx.try_send(frame("c")), Err(TrySendError::Full));
        assert_eq!(next(&mut rx).await, Some(frame("a")));
        assert_eq!(tx.try_send(frame("c")), Ok(()));
        drop(tx);
        assert_eq!(next(&mut rx).await, Some(frame("b")));
        assert_eq!(next(&mut rx).await, Some(frame("c")));
        assert_eq!(next(&mut rx).await, None);
    }

    #[tokio::test]
    async fn wakes_a_parked_receiver_and_reports_it_gone() {
        let (tx, mut rx) = queue(4);
        let reader = tokio::spawn(async move { next(&mut rx).await });
        tokio::task::yield_now().await;
        tx.try_send(frame("x")).unwrap();
        assert_eq!(reader.await.unwrap(), Some(frame("x")));
        // The reader task ended, dropping its receiver.
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(frame("y")), Err(TrySendError::Closed));
    }
}
