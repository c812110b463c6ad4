//! The in-process transport: an update is delivered as it is published, in
//! the publisher's own call (no task, no copy), as before issue 12.

use std::sync::{Arc, Weak};

use super::{BoxFuture, Transport, TransportHealth};
use crate::hub::dispatch::{Event, Hub};
use crate::hub::PublishError;

#[derive(Debug)]
pub struct Local {
    health: Arc<TransportHealth>,
}

impl Local {
    pub fn new() -> Local {
        Local {
            health: Arc::new(TransportHealth::new("local", true)),
        }
    }
}

impl Default for Local {
    fn default() -> Self {
        Local::new()
    }
}

impl Transport for Local {
    fn publish<'a>(
        &'a self,
        hub: &'a Hub,
        event: Arc<Event>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        hub.deliver(event);
        Box::pin(std::future::ready(Ok(())))
    }

    fn start(self: Arc<Self>, _hub: Weak<Hub>) {}

    fn health(&self) -> &Arc<TransportHealth> {
        &self.health
    }
}
