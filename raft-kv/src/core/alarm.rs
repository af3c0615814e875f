//! Alarms: replicated conditions that stop some writes cluster-wide, as
//! etcd's alarm store does.
//!
//! An alarm is a (member, [`AlarmType`]) pair. It is raised and cleared by
//! `Op::Alarm` entries, so every member holds the same set at the same
//! index; the set lives in the state machine ([`Cf::Meta`], `alarm/...`), so
//! it survives restarts and travels with snapshots. What an active alarm
//! refuses is decided when an entry applies ([`Alarms::refuse`]), so a write
//! already in the log when the alarm applied is refused on every member
//! alike:
//!
//! - `NOSPACE` (a member's database passed its quota): puts, transactions
//!   that put, and lease grants fail with "etcdserver: mvcc: database space
//!   exceeded"; reads, deletes, compaction, lease revokes and keep-alives go
//!   on, so an operator can make room, defragment and disarm;
//! - `CORRUPT` (a member's data diverged): every write fails with
//!   "etcdserver: corrupt cluster".

use std::collections::BTreeSet;

use crate::api::{AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType, RequestOp};
use crate::command::Op;
use crate::engine::{Cf, ReadView, WriteBatch};
use crate::{keys, Error, Result};

/// The active alarms, as of the applied index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alarms {
    /// (member id, alarm type as its wire number).
    active: BTreeSet<(u64, i32)>,
}

impl Alarms {
    /// Loads the alarms stored in `view`.
    pub fn load(view: &impl ReadView) -> Result<Self> {
        let mut active = BTreeSet::new();
        let end = crate::engine::prefix_end(keys::ALARM_PREFIX);
        view.try_scan(Cf::Meta, keys::ALARM_PREFIX, end.as_deref(), &mut |k, _| {
            let alarm = keys::decode_alarm_key(k).ok_or_else(|| Error::Corruption(format!("alarm record {k:02x?}")))?;
            active.insert(alarm);
            Ok(true)
        })?;
        Ok(Alarms { active })
    }

    /// Every active alarm of type `kind` (every alarm for `NONE`), by
    /// member.
    pub fn list(&self, kind: AlarmType) -> Vec<AlarmMember> {
        self.active
            .iter()
            .filter(|(_, t)| kind == AlarmType::None || *t == kind as i32)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// True if some member has raised an alarm of type `kind`.
    pub fn is_active(&self, kind: AlarmType) -> bool {
        self.active.iter().any(|(_, t)| *t == kind as i32)
    }

    /// True if member `member` has raised `kind`.
    pub fn has(&self, member: u64, kind: AlarmType) -> bool {
        self.active.contains(&(member, kind as i32))
    }

    /// Applies an alarm request, as etcd answers it: `ACTIVATE` returns the
    /// alarm (new or already active), `DEACTIVATE` the alarm it cleared
    /// (none if it was not active), `GET` the active ones of the type.
    /// `NONE` and types this release does not know are never stored.
    pub fn apply(&mut self, req: &AlarmRequest, wb: &mut WriteBatch) -> AlarmResponse {
        let known = matches!(AlarmType::try_from(req.alarm), Ok(AlarmType::Nospace | AlarmType::Corrupt));
        let key = (req.member_id, req.alarm);
        let member = AlarmMember { member_id: req.member_id, alarm: req.alarm };
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Activate) if known => {
                if self.active.insert(key) {
                    tracing::warn!(
                        alarm = req.alarm().as_str_name(),
                        from = format_args!("{:x}", key.0),
                        "alarm raised"
                    );
                    wb.put(Cf::Meta, keys::alarm_key(key.0, key.1), Vec::new());
                }
                vec![member]
            }
            Ok(AlarmAction::Deactivate) if self.active.remove(&key) => {
                tracing::warn!(alarm = req.alarm().as_str_name(), from = format_args!("{:x}", key.0), "alarm disarmed");
                wb.delete(Cf::Meta, keys::alarm_key(key.0, key.1));
                vec![member]
            }
            Ok(AlarmAction::Get) => self.list(req.alarm()),
            _ => Vec::new(),
        };
        AlarmResponse { header: None, alarms }
    }

    /// The error an operation gets at apply time while alarms are active
    /// (etcd's capped and corrupt appliers), if any.
    pub fn refuse(&self, op: &Op) -> Result<()> {
        if self.active.is_empty() {
            return Ok(());
        }
        if self.is_active(AlarmType::Corrupt) && is_write(op) {
            return Err(Error::Corrupt);
        }
        if self.is_active(AlarmType::Nospace) && takes_space(op) {
            return Err(Error::NoSpace);
        }
        Ok(())
    }
}

/// True for the operations a full database refuses: puts, transactions
/// with a put in either branch (nested ones included), lease grants.
pub fn takes_space(op: &Op) -> bool {
    fn puts(ops: &[RequestOp]) -> bool {
        ops.iter().any(|op| match &op.request {
            Some(crate::api::request_op::Request::RequestPut(_)) => true,
            Some(crate::api::request_op::Request::RequestTxn(t)) => puts(&t.success) || puts(&t.failure),
            _ => false,
        })
    }
    match op {
        Op::Put(_) | Op::LeaseGrant(_) => true,
        Op::Txn(t) => puts(&t.success) || puts(&t.failure),
        _ => false,
    }
}

/// True for the operations a corrupt cluster refuses: every change to keys
/// and leases (etcd's corrupt applier), but not alarms or membership, which
/// an operator needs to recover.
fn is_write(op: &Op) -> bool {
    matches!(op, Op::Put(_) | Op::DeleteRange(_) | Op::Txn(_) | Op::Compact(_) | Op::LeaseGrant(_) | Op::LeaseRevoke(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DeleteRangeRequest, LeaseGrantRequest, PutRequest, TxnRequest};
    use crate::engine::{Engine, MemEngine};

    fn req(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest { action: action as i32, member_id, alarm: alarm as i32 }
    }

    fn apply(alarms: &mut Alarms, engine: &MemEngine, r: AlarmRequest) -> Vec<AlarmMember> {
        let mut wb = WriteBatch::new();
        let resp = alarms.apply(&r, &mut wb);
        engine.write(wb, true).unwrap();
        resp.alarms
    }

    #[test]
    fn activate_list_deactivate_and_reload() {
        let engine = MemEngine::new();
        let mut a = Alarms::default();
        let nospace = AlarmMember { member_id: 7, alarm: AlarmType::Nospace as i32 };
        assert_eq!(apply(&mut a, &engine, req(AlarmAction::Activate, 7, AlarmType::Nospace)), vec![nospace]);
        // Raising it again answers with the same alarm and stores nothing new.
        assert_eq!(apply(&mut a, &engine, req(AlarmAction::Activate, 7, AlarmType::Nospace)), vec![nospace]);
        apply(&mut a, &engine, req(AlarmAction::Activate, 9, AlarmType::Corrupt));
        assert_eq!(a.list(AlarmType::None).len(), 2);
        assert_eq!(a.list(AlarmType::Nospace), vec![nospace]);
        assert_eq!(apply(&mut a, &engine, req(AlarmAction::Get, 0, AlarmType::Corrupt)).len(), 1);
        assert_eq!(Alarms::load(&engine).unwrap(), a, "the stored set is the applied set");

        assert_eq!(apply(&mut a, &engine, req(AlarmAction::Deactivate, 7, AlarmType::Nospace)), vec![nospace]);
        assert!(apply(&mut a, &engine, req(AlarmAction::Deactivate, 7, AlarmType::Nospace)).is_empty());
        assert!(!a.is_active(AlarmType::Nospace));
        assert!(a.has(9, AlarmType::Corrupt));
        assert_eq!(Alarms::load(&engine).unwrap(), a);
    }

    #[test]
    fn none_and_unknown_types_are_never_stored() {
        let engine = MemEngine::new();
        let mut a = Alarms::default();
        assert!(apply(&mut a, &engine, req(AlarmAction::Activate, 1, AlarmType::None)).is_empty());
        let unknown = AlarmRequest { action: AlarmAction::Activate as i32, member_id: 1, alarm: 42 };
        assert!(apply(&mut a, &engine, unknown).is_empty());
        let bad_action = AlarmRequest { action: 9, member_id: 1, alarm: AlarmType::Nospace as i32 };
        assert!(apply(&mut a, &engine, bad_action).is_empty());
        assert_eq!(a, Alarms::default());
        assert_eq!(Alarms::load(&engine).unwrap(), a);
    }

    #[test]
    fn nospace_refuses_what_takes_space_and_corrupt_every_write() {
        let engine = MemEngine::new();
        let mut a = Alarms::default();
        let put = Op::Put(PutRequest::new("k", "v"));
        let delete = Op::DeleteRange(DeleteRangeRequest::key("k"));
        let txn_put = Op::Txn(TxnRequest::new().or_else(PutRequest::new("k", "v")));
        let nested = Op::Txn(TxnRequest::new().and_then(TxnRequest::new().and_then(PutRequest::new("k", "v"))));
        let txn_delete = Op::Txn(TxnRequest::new().and_then(DeleteRangeRequest::key("k")));
        let grant = Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 1 });
        for op in [&put, &delete, &txn_put, &grant] {
            assert_eq!(a.refuse(op), Ok(()));
        }
        apply(&mut a, &engine, req(AlarmAction::Activate, 3, AlarmType::Nospace));
        for op in [&put, &txn_put, &nested, &grant] {
            assert_eq!(a.refuse(op), Err(Error::NoSpace), "{op:?}");
        }
        for op in [&delete, &txn_delete, &Op::Compact(Default::default())] {
            assert_eq!(a.refuse(op), Ok(()), "{op:?}");
        }
        apply(&mut a, &engine, req(AlarmAction::Deactivate, 3, AlarmType::Nospace));
        apply(&mut a, &engine, req(AlarmAction::Activate, 3, AlarmType::Corrupt));
        for op in [&put, &delete, &txn_delete, &grant] {
            assert_eq!(a.refuse(op), Err(Error::Corrupt), "{op:?}");
        }
        assert_eq!(a.refuse(&Op::Alarm(req(AlarmAction::Deactivate, 3, AlarmType::Corrupt))), Ok(()));
    }
}
