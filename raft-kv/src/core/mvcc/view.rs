//! [`MvccView`]: the state machine as of one engine snapshot, to read on
//! any thread.
//!
//! The applying thread takes the view (an engine snapshot: cheap) and hands
//! it to a reader, so a range or a window of watch history costs that
//! thread nothing however much it reads. A view has no in-memory index:
//! every read scans the history of its keys, at the revision the snapshot
//! holds (read from the snapshot's own metadata, so data, revision and
//! compact revision always agree — even if a snapshot install replaced the
//! store between the request and the read).

use super::read::{check_read_revision, history_events, serve_range};
use super::validate::validate_range;
use super::{read_i64, Mvcc, INITIAL_REVISION};
use crate::api::{Event, RangeRequest, RangeResponse};
use crate::core::integrity::Integrity;
use crate::engine::{Cf, Engine, ReadView};
use crate::keys;
use crate::{Error, Result};

/// A read-only view of the state machine at one engine snapshot (see the
/// module docs). `Send`: built on the applying thread, read anywhere.
pub struct MvccView<V> {
    view: V,
    max_response_bytes: usize,
    /// Revision and compact revision, read from the snapshot once: a view
    /// the node publishes serves many ranges (two engine reads each were
    /// ~9% of a serializable point read's CPU, issue 17).
    revisions: std::sync::OnceLock<(i64, i64)>,
    /// Where a corrupt read is recorded, which stops the member.
    integrity: Integrity,
}

impl<V> std::fmt::Debug for MvccView<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvccView").finish_non_exhaustive()
    }
}

impl<E: Engine> Mvcc<E> {
    /// A view of the store as last committed to the engine (staged writes
    /// are not in it: take it between apply batches, as a member does
    /// between steps). Ranges on it are bounded like [`Mvcc::range`].
    pub fn view(&self) -> MvccView<E::Snapshot> {
        MvccView {
            view: self.engine.snapshot(),
            max_response_bytes: self.max_response_bytes,
            revisions: std::sync::OnceLock::new(),
            integrity: self.integrity.clone(),
        }
    }
}

impl<V: ReadView> MvccView<V> {
    /// The view's revision and compact revision (the snapshot never
    /// changes: read once, on first use).
    fn revisions(&self) -> Result<(i64, i64)> {
        if let Some(revs) = self.revisions.get() {
            return Ok(*revs);
        }
        let revision = read_i64(&self.view, keys::REVISION)?.unwrap_or(INITIAL_REVISION);
        let compact = read_i64(&self.view, keys::COMPACT_REVISION)?.unwrap_or(0);
        Ok(*self.revisions.get_or_init(|| (revision, compact)))
    }

    /// [`Mvcc::range`] at the view's revision: the same answer the store
    /// gave when the view was taken, read from history.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.integrity.check(self.range_unchecked(req))
    }

    fn range_unchecked(&self, req: &RangeRequest) -> Result<RangeResponse> {
        validate_range(req)?;
        let (revision, compact) = self.revisions()?;
        let rev = check_read_revision(req.revision, revision, compact)?;
        let at = if rev == 0 { revision } else { rev };
        let history =
            |s: &[u8], e: Option<&[u8]>, v: &mut crate::engine::Visitor<'_>| self.view.try_scan(Cf::Kv, s, e, v);
        let mut resp = serve_range(req, at, self.max_response_bytes, &history, None)?;
        resp.header = crate::api::header(revision);
        Ok(resp)
    }

    /// [`Mvcc::history_until`] on the view: the events of `[from, until]`
    /// on `[key, range_end)`, failing with [`Error::Compacted`] when the
    /// view's history no longer reaches back to `from`.
    pub fn history_until(&self, key: &[u8], range_end: &[u8], from: i64, until: i64) -> Result<Vec<Event>> {
        self.integrity.check(self.history_unchecked(key, range_end, from, until))
    }

    fn history_unchecked(&self, key: &[u8], range_end: &[u8], from: i64, until: i64) -> Result<Vec<Event>> {
        let (_, compact) = self.revisions()?;
        if from < compact {
            return Err(Error::Compacted { requested: from, compact_revision: compact });
        }
        let history =
            |s: &[u8], e: Option<&[u8]>, v: &mut crate::engine::Visitor<'_>| self.view.try_scan(Cf::Kv, s, e, v);
        history_events(&history, key, range_end, from, until)
    }
}
