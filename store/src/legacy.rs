//! Format version 3 layouts of the types that grew in version 4, kept so a node upgraded
//! in place still reads the log entries, snapshots and backups it wrote before. Bincode
//! is not self-describing: these mirror the old field and variant order exactly.

use serde::{Deserialize, Serialize};

use crate::command::{Command, Op};
use crate::model::{Kind, Resource};
use crate::quota::{LedgerImage, QuotaSync};
use crate::state::{ClusterMeta, StateImage, Stored};
use crate::types::{Entry, LogId, Node, NodeId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandV3 {
    pub at_ms: u64,
    pub actor: String,
    pub op: OpV3,
}

/// [`Op`] as of version 3: no token revocation, and a restore carries a version-3 image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OpV3 {
    InitCluster {
        cluster_id: String,
        token_secret: Vec<u8>,
    },
    Create(Resource),
    Update(Resource),
    Delete {
        kind: Kind,
        id: String,
    },
    Batch(Vec<OpV3>),
    QuotaSync(QuotaSync),
    Restore(StateImageV3),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateImageV3 {
    pub cluster: Option<ClusterMeta>,
    pub revision: u64,
    pub resources: Vec<Stored>,
    pub ledger: LedgerImage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryV3 {
    pub log_id: LogId,
    pub payload: PayloadV3,
}

/// openraft's `EntryPayload` with a version-3 command (boxed: serde writes a box as its
/// content, so the layout is the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PayloadV3 {
    Blank,
    Normal(Box<CommandV3>),
    Membership(openraft::Membership<NodeId, Node>),
}

impl From<StateImageV3> for StateImage {
    fn from(v: StateImageV3) -> StateImage {
        StateImage {
            cluster: v.cluster,
            revision: v.revision,
            resources: v.resources,
            ledger: v.ledger,
            revoked: Vec::new(),
            audit: Vec::new(),
        }
    }
}

impl From<OpV3> for Op {
    fn from(v: OpV3) -> Op {
        match v {
            OpV3::InitCluster {
                cluster_id,
                token_secret,
            } => Op::InitCluster {
                cluster_id,
                token_secret,
            },
            OpV3::Create(r) => Op::Create(r),
            OpV3::Update(r) => Op::Update(r),
            OpV3::Delete { kind, id } => Op::Delete { kind, id },
            OpV3::Batch(ops) => Op::Batch(ops.into_iter().map(Op::from).collect()),
            OpV3::QuotaSync(s) => Op::QuotaSync(s),
            OpV3::Restore(image) => Op::Restore(image.into()),
        }
    }
}

impl From<CommandV3> for Command {
    fn from(v: CommandV3) -> Command {
        Command {
            at_ms: v.at_ms,
            actor: v.actor,
            op: v.op.into(),
            origin: None,
        }
    }
}

impl From<EntryV3> for Entry {
    fn from(v: EntryV3) -> Entry {
        let payload = match v.payload {
            PayloadV3::Blank => openraft::EntryPayload::Blank,
            PayloadV3::Normal(c) => openraft::EntryPayload::Normal((*c).into()),
            PayloadV3::Membership(m) => openraft::EntryPayload::Membership(m),
        };
        Entry {
            log_id: v.log_id,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::model::Tenant;

    /// What a version-3 release wrote for `value` (same body, old version byte).
    fn as_v3<T: Serialize>(value: &T) -> Vec<u8> {
        let mut bytes = codec::encode(value).unwrap();
        bytes[0] = codec::V3;
        bytes
    }

    fn tenant(id: &str) -> Resource {
        Resource::Tenant(Tenant {
            id: id.into(),
            name: id.into(),
            description: String::new(),
            labels: Default::default(),
            guardrails: None,
        })
    }

    #[test]
    fn version_3_entries_and_images_upgrade() {
        let image = StateImageV3 {
            revision: 7,
            ..Default::default()
        };
        let old = EntryV3 {
            log_id: LogId::new(openraft::CommittedLeaderId::new(2, 1), 9),
            payload: PayloadV3::Normal(Box::new(CommandV3 {
                at_ms: 5,
                actor: "ops".into(),
                op: OpV3::Batch(vec![
                    OpV3::Create(tenant("a")),
                    OpV3::Restore(image.clone()),
                ]),
            })),
        };
        let entry: Entry = codec::decode_upgrading::<Entry, EntryV3>(&as_v3(&old)).unwrap();
        let openraft::EntryPayload::Normal(cmd) = entry.payload else {
            panic!("not a normal entry")
        };
        assert_eq!(
            (cmd.at_ms, cmd.actor.as_str(), cmd.origin),
            (5, "ops", None)
        );
        let Op::Batch(ops) = cmd.op else {
            panic!("not a batch")
        };
        assert_eq!(ops[0], Op::Create(tenant("a")));
        assert_eq!(ops[1], Op::Restore(image.into()));
        assert_eq!(entry.log_id.index, 9);

        // Version-3 bytes are not silently read with the new layout, nor the reverse.
        assert!(codec::decode::<Entry>(&as_v3(&old)).is_err());
        let img = codec::decode_upgrading::<StateImage, StateImageV3>(&as_v3(&StateImageV3 {
            revision: 3,
            ..Default::default()
        }))
        .unwrap();
        assert_eq!((img.revision, img.revoked.len()), (3, 0));
        let new = codec::encode(&img).unwrap();
        assert_eq!(
            codec::decode_upgrading::<StateImage, StateImageV3>(&new).unwrap(),
            img
        );
    }

    /// The mirrors match what version 3 really wrote: a version-4 entry whose command has
    /// no origin is the version-3 bytes plus the `None` tag of `origin` (its last field).
    #[test]
    fn mirrors_match_the_real_version_3_layout() {
        let cmd = Command::new("ops", Op::Create(tenant("a")));
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(3, 2), 11),
            payload: openraft::EntryPayload::Normal(cmd),
        };
        let mut bytes = codec::encode(&entry).unwrap();
        assert_eq!(bytes.pop(), Some(0), "origin: None is the last byte");
        bytes[0] = codec::V3;
        let back = codec::decode_upgrading::<Entry, EntryV3>(&bytes).unwrap();
        assert_eq!(back, entry);
        // An image: the two empty lists added at its end are one length byte each.
        let image = StateImage {
            revision: 5,
            ..Default::default()
        };
        let mut bytes = codec::encode(&image).unwrap();
        assert_eq!(bytes.split_off(bytes.len() - 2), [0, 0]);
        bytes[0] = codec::V3;
        assert_eq!(crate::state::decode_image(&bytes).unwrap(), image);
    }

    #[test]
    fn unchanged_types_read_both_versions() {
        let v = (1u64, "x".to_string());
        assert_eq!(
            codec::decode_stored::<(u64, String)>(&as_v3(&v)).unwrap(),
            v
        );
        assert_eq!(
            codec::decode_stored::<(u64, String)>(&codec::encode(&v).unwrap()).unwrap(),
            v
        );
        let mut other = codec::encode(&v).unwrap();
        other[0] = 2;
        assert!(codec::decode_stored::<(u64, String)>(&other).is_err());
    }
}
