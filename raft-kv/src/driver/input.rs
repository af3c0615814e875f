//! What the node thread receives (`Input`), and what it runs on its
//! member for local requests (`Local`).

use std::time::Instant;

use raft::eraftpb::Message;

use crate::api::{AlarmMember, AlarmType, LeaseTimeToLiveResponse, Member, RangeRequest};
use crate::command::{Op, Response};
use crate::core::peer::Peer;
use crate::core::reads::HistoryRead;
use crate::core::status::Status;
use crate::core::watch::{WatchRequest, Watcher};
use crate::driver::call::Responder;
use crate::engine::Engine;
use crate::{Error, Result};

/// A callback that receives a request's outcome (on the node thread, or on
/// a reader thread for ranges: keep it short, e.g. send on a channel).
pub type Callback = Box<dyn FnOnce(Result<Response>) + Send>;

/// What a node thread receives.
pub(crate) enum Input {
    Raft(Message),
    /// A write, with the client it runs as (if any).
    Propose(Op, Option<crate::command::AuthInfo>, Callback),
    Read(RangeRequest, Callback),
    /// A linearizable read's barrier ([`Peer::read_barrier`]).
    Barrier(Callback),
    /// Runs a closure on the member (status, watches, lease queries...).
    Local(LocalFn),
    /// Move leadership to the member and answer once it has it (or
    /// [`Error::Timeout`] after `deadline`).
    MoveLeader(u64, Instant, Responder<()>),
    /// The log writer made every write up to this Ready number durable.
    Persisted(u64),
    /// The log writer failed; the member must stop.
    WriteFailed(Error),
    /// A reader read (or refused) a window of watch history.
    History(HistoryRead),
    Shutdown,
}

/// A whole-store read prepared on the node thread (an engine snapshot
/// taken), to run on the member's background thread.
pub(crate) type ScanJob<R> = Box<dyn FnOnce() -> Result<R> + Send>;

/// A closure run on the node thread against its member.
pub(crate) type LocalFn = Box<dyn FnOnce(&mut dyn Local) + Send>;

/// What a node thread does on the member for local requests: the part of
/// [`Peer`]'s API that needs no consensus round.
pub(crate) trait Local {
    fn status(&self) -> Status;
    fn campaign(&mut self) -> Result<()>;
    fn transfer_leader(&mut self, to: u64);
    fn watch(&mut self, req: WatchRequest) -> Result<Watcher>;
    fn cancel_watch(&mut self, id: u64);
    fn watch_progress(&mut self, id: u64);
    fn lease_time_to_live(&self, id: i64, keys: bool) -> LeaseTimeToLiveResponse;
    fn leases(&self) -> Vec<i64>;
    fn hash_job(&self, revision: i64) -> Result<ScanJob<u64>>;
    fn members(&self) -> Vec<Member>;
    fn export(&self) -> crate::core::export::Export;
    fn alarms(&self, kind: AlarmType) -> Vec<AlarmMember>;
    fn defragment_job(&self) -> ScanJob<()>;
}

impl<E: Engine> Local for Peer<E, Callback> {
    fn status(&self) -> Status {
        Peer::status(self)
    }
    fn campaign(&mut self) -> Result<()> {
        Peer::campaign(self)
    }
    fn transfer_leader(&mut self, to: u64) {
        Peer::transfer_leader(self, to)
    }
    fn watch(&mut self, req: WatchRequest) -> Result<Watcher> {
        Peer::watch(self, req)
    }
    fn cancel_watch(&mut self, id: u64) {
        Peer::cancel_watch(self, id)
    }
    fn watch_progress(&mut self, id: u64) {
        Peer::watch_progress(self, id)
    }
    fn lease_time_to_live(&self, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
        Peer::lease_time_to_live(self, id, keys)
    }
    fn leases(&self) -> Vec<i64> {
        Peer::leases(self)
    }
    fn hash_job(&self, revision: i64) -> Result<ScanJob<u64>> {
        Ok(Box::new(self.mvcc().hash_job(revision)?))
    }
    fn members(&self) -> Vec<Member> {
        Peer::members(self)
    }
    fn export(&self) -> crate::core::export::Export {
        Peer::export(self)
    }
    fn alarms(&self, kind: AlarmType) -> Vec<AlarmMember> {
        Peer::alarms(self, kind)
    }
    fn defragment_job(&self) -> ScanJob<()> {
        Box::new(Peer::defragment_job(self))
    }
}
