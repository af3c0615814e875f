//! Keys of the `Meta` and `Raft` column families, in one place so no two
//! modules collide.

/// Meta: the index of the last applied raft entry (u64 BE).
pub const APPLIED_INDEX: &[u8] = b"applied_index";
/// Meta: the term of the last applied raft entry (u64 BE).
pub const APPLIED_TERM: &[u8] = b"applied_term";
/// Meta: the conf state as of the applied index (raft protobuf).
pub const CONF_STATE: &[u8] = b"conf_state";
/// Meta: the MVCC current revision (i64 BE).
pub const REVISION: &[u8] = b"mvcc_revision";
/// Meta: the MVCC compact revision (i64 BE).
pub const COMPACT_REVISION: &[u8] = b"mvcc_compact_revision";

/// Meta: prefix of member records; the key is this prefix and the id (u64 BE).
pub const MEMBER_PREFIX: &[u8] = b"member/";

/// The key of member `id`'s record.
pub fn member_key(id: u64) -> Vec<u8> {
    let mut k = MEMBER_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Meta: prefix of the ids of removed members (the key is this prefix and
/// the id, u64 BE; empty value): their messages are dropped.
pub const REMOVED_PREFIX: &[u8] = b"removed/";

/// The key recording that member `id` was removed.
pub fn removed_key(id: u64) -> Vec<u8> {
    let mut k = REMOVED_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Meta: prefix of the active alarms; the key is this prefix, the member id
/// (u64 BE) and the alarm type (i32 BE); empty value (see `core::alarm`).
pub const ALARM_PREFIX: &[u8] = b"alarm/";

/// The key recording that member `member` raised alarm type `alarm`.
pub fn alarm_key(member: u64, alarm: i32) -> Vec<u8> {
    let mut k = ALARM_PREFIX.to_vec();
    k.extend_from_slice(&member.to_be_bytes());
    k.extend_from_slice(&alarm.to_be_bytes());
    k
}

/// The member and alarm type of an [`alarm_key`], if it is one.
pub fn decode_alarm_key(k: &[u8]) -> Option<(u64, i32)> {
    let rest = k.strip_prefix(ALARM_PREFIX)?;
    let member: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    let alarm: [u8; 4] = rest.get(8..)?.try_into().ok()?;
    Some((u64::from_be_bytes(member), i32::from_be_bytes(alarm)))
}

/// Meta: prefix of the recently applied commands, by the raft index they
/// applied at (u64 BE; value: the command id, u64 BE), so a duplicated
/// proposal applies once (see `dedup`).
pub const APPLIED_REQUEST_PREFIX: &[u8] = b"req/";

/// The key recording which command applied at raft index `index`.
pub fn applied_request_key(index: u64) -> Vec<u8> {
    let mut k = APPLIED_REQUEST_PREFIX.to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Raft: the hard state (raft protobuf).
pub const HARD_STATE: &[u8] = b"h";
/// Raft: the index and term of the last entry removed by log compaction
/// (two u64 BE).
pub const TRUNCATED: &[u8] = b"t";
/// Raft: how many times this member's engine has been opened (u64 BE); keeps
/// request ids unique across restarts.
pub const BOOT_COUNT: &[u8] = b"b";
/// Raft: prefix of log entries; the key is this byte and the index (u64 BE).
pub const ENTRY_PREFIX: u8 = b'e';

/// The key of the log entry at `index`.
pub fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = ENTRY_PREFIX;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Decodes a big-endian u64 record.
pub(crate) fn decode_u64(v: &[u8]) -> crate::Result<u64> {
    let arr: [u8; 8] =
        v.try_into().map_err(|_| crate::Error::Corruption(format!("expected 8 bytes, got {}", v.len())))?;
    Ok(u64::from_be_bytes(arr))
}

/// Meta: whether authentication is enabled (one byte, 1 = on).
pub const AUTH_ENABLED: &[u8] = b"auth/enabled";
/// Meta: the auth store's revision (u64 BE).
pub const AUTH_REVISION: &[u8] = b"auth/revision";
/// Meta: prefix of user records (authpb `User`), by name.
pub const AUTH_USER_PREFIX: &[u8] = b"auth/user/";
/// Meta: prefix of role records (authpb `Role`), by name.
pub const AUTH_ROLE_PREFIX: &[u8] = b"auth/role/";
