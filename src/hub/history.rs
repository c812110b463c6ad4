//! The bounded ring of recent updates that reconnecting subscribers are
//! replayed from (`Last-Event-ID`), bounded both in count and in bytes.

use std::collections::VecDeque;
use std::sync::Arc;

use super::dispatch::Event;

#[derive(Debug)]
pub struct History {
    events: VecDeque<Arc<Event>>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

impl History {
    pub fn new(max_events: usize, max_bytes: usize) -> History {
        History {
            events: VecDeque::with_capacity(max_events.min(4096)),
            bytes: 0,
            max_events,
            max_bytes,
        }
    }

    pub fn push(&mut self, e: Arc<Event>) {
        if self.max_events == 0 {
            return;
        }
        self.bytes += e.frame.len();
        self.events.push_back(e);
        while self.events.len() > self.max_events
            || (self.bytes > self.max_bytes && self.events.len() > 1)
        {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= old.frame.len();
            }
        }
    }

    /// The events after `id`, or `None` when no kept event has that id.
    pub fn after(&self, id: &str) -> Option<impl Iterator<Item = &Arc<Event>>> {
        // Newest first: reconnecting clients are usually only a few behind.
        let pos = self.events.iter().rposition(|e| e.id == id)?;
        Some(self.events.iter().skip(pos + 1))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.events.iter()
    }

    /// The id of the newest event, if any.
    pub fn last_id(&self) -> Option<&str> {
        self.events.back().map(|e| e.id.as_str())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, size: usize) -> Arc<Event> {
        Arc::new(Event {
            id: id.into(),
            topics: vec!["t".into()],
            private: false,
            frame: bytes::Bytes::from(vec![b'x'; size]),
        })
    }

    #[test]
    fn bounded_in_count_and_bytes() {
        let mut h = History::new(3, 1000);
        for i in 0..5 {
            h.push(ev(&i.to_string(), 10));
        }
        assert_eq!(h.len(), 3);
        assert!(h.after("1").is_none());
        assert_eq!(h.after("2").unwrap().count(), 2);
        let mut h = History::new(100, 25);
        for i in 0..5 {
            h.push(ev(&i.to_string(), 10));
        }
        assert_eq!(h.len(), 2);
        assert_eq!(h.last_id(), Some("4"));
    }
}
