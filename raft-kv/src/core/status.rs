//! What a member reports about itself: [`MemberState`] (cheap, after every
//! step), [`Status`] (with the engine's size) and the raft [`Role`].

use raft::StateRole;

/// A member's raft and store position, as its node thread last saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberState {
    /// This member's id.
    pub id: u64,
    /// The leader this member knows of (0: none).
    pub leader: u64,
    /// Current raft term.
    pub term: u64,
    /// This member's raft role.
    pub role: Role,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied.
    pub applied_index: u64,
    /// Current MVCC revision.
    pub revision: i64,
    /// MVCC compact revision.
    pub compact_revision: i64,
    /// The node thread has stopped (shut down, or a fatal storage error).
    pub stopped: bool,
}

impl MemberState {
    /// The state of a member that has not started yet.
    pub(crate) fn initial(id: u64) -> Self {
        MemberState {
            id,
            leader: 0,
            term: 0,
            role: Role::Follower,
            commit_index: 0,
            applied_index: 0,
            revision: 0,
            compact_revision: 0,
            stopped: false,
        }
    }

    /// True when leadership, term, role or liveness differ: what
    /// the driver's state changes report.
    pub(crate) fn differs_in_role(&self, other: &MemberState) -> bool {
        (self.leader, self.term, self.role, self.stopped) != (other.leader, other.term, other.role, other.stopped)
    }
}

/// A point-in-time summary of a member (what etcd's `Status` reports): its
/// [`MemberState`] plus what costs a look at the log and the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Leader, term, role, indexes and revisions.
    pub state: MemberState,
    /// First index still in the raft log (older entries were compacted).
    pub first_index: u64,
    /// Last index in the raft log.
    pub last_index: u64,
    /// The engine's size estimate in bytes (etcd's `dbSize`; see
    /// [`DbSize`](crate::engine::DbSize)).
    pub db_size: u64,
    /// The part of it holding live data (etcd's `dbSizeInUse`).
    pub db_size_in_use: u64,
    /// The active alarms, as of the applied index.
    pub alarms: Vec<crate::api::AlarmMember>,
    /// Voters of the current configuration.
    pub voters: Vec<u64>,
    /// Learners of the current configuration.
    pub learners: Vec<u64>,
}

/// A member's raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader.
    Follower,
    /// Campaigning.
    Candidate,
    /// Pre-campaigning (pre-vote).
    PreCandidate,
    /// The leader.
    Leader,
}

impl From<StateRole> for Role {
    fn from(r: StateRole) -> Self {
        match r {
            StateRole::Follower => Role::Follower,
            StateRole::Candidate => Role::Candidate,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Leader => Role::Leader,
        }
    }
}
