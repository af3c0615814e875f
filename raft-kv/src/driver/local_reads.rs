//! [`LocalReads`]: serializable ranges served without the node thread.
//!
//! The node thread publishes a view of its applied state (an
//! [`MvccView`] over an engine snapshot) whenever the applied index moves:
//! right after it writes an apply batch and before that batch's completions
//! are released, so a caller whose write was acknowledged by this member
//! reads it back here; and after a snapshot install. A serializable range
//! takes the latest view and is served without the node thread: a single
//! key on the caller's thread at once, a wider range (which may scan far)
//! on one of the member's readers. Before (issue 17), every serializable
//! range cost an inbox push, a wake-up of the node thread, an engine
//! snapshot per step and a hand-off to a reader, whose completion woke the
//! caller again: three thread switches for a point read of a few µs.
//!
//! The answer is the one the node thread would have given: a serializable
//! range is served from this member's applied state as it is when the read
//! arrives, unchecked against the leader.
//!
//! A linearizable point read uses the same view: the node thread only
//! confirms the read index ([`Peer::read_barrier`]) and, once this member
//! has applied up to it, hands the caller the latest view — published at
//! that applied index or later — to read on its own thread
//! (`AsyncNode::range`). Before, it cost a hand-off to a reader and a
//! wake-up of the caller from there.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::api::{RangeRequest, RangeResponse};
use crate::core::mvcc::MvccView;
use crate::core::peer::Peer;
use crate::engine::{Engine, ReadView};
use crate::Result;

/// A view of the applied state that can serve ranges on any thread.
pub(crate) trait RangeView: Send + Sync {
    /// Reads `req` at the view's revision.
    fn range(&self, req: &RangeRequest) -> Result<RangeResponse>;
}

impl<V: ReadView + Send + Sync> RangeView for MvccView<V> {
    fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        MvccView::range(self, req)
    }
}

/// The latest published view of one member's applied state, with the
/// applied index it was taken at (see the module docs).
#[derive(Default)]
pub(crate) struct LocalReads {
    latest: RwLock<Option<(u64, Arc<dyn RangeView>)>>,
}

impl LocalReads {
    /// Publishes a view of `peer`'s applied state unless the published one
    /// is already at its applied index. Call between steps or right after
    /// an apply batch was written (the applied state is then in the engine).
    pub(crate) fn publish<E: Engine, T>(&self, peer: &Peer<E, T>) {
        let applied = peer.applied_index();
        if matches!(&*self.latest.read(), Some((at, _)) if *at == applied) {
            return;
        }
        let view: Arc<dyn RangeView> = Arc::new(peer.mvcc().view());
        // The old view (an engine snapshot) is released outside the lock.
        let old = self.latest.write().replace((applied, view));
        drop(old);
    }

    /// The latest view, if the member is running.
    pub(crate) fn latest(&self) -> Option<Arc<dyn RangeView>> {
        self.latest_at().map(|(_, v)| v)
    }

    /// The latest view with the applied index it was taken at.
    pub(crate) fn latest_at(&self) -> Option<(u64, Arc<dyn RangeView>)> {
        self.latest.read().as_ref().map(|(at, v)| (*at, Arc::clone(v)))
    }

    /// Drops the published view (the member stopped): its engine snapshot
    /// must not keep the store open.
    pub(crate) fn clear(&self) {
        let old = self.latest.write().take();
        drop(old);
    }
}

impl std::fmt::Debug for LocalReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.latest.read().as_ref().map(|(at, _)| *at);
        f.debug_struct("LocalReads").field("applied", &at).finish()
    }
}
