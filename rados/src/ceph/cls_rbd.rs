//! The `cls_rbd` methods we call directly (class `rbd`, `src/cls/rbd/cls_rbd.cc`), typed.
//!
//! Why not through librbd: a read of a few header fields is one OSD operation here, where
//! a librbd open costs several round trips and a watch; and a member snapshot cut inside a
//! fence must be `lock.assert_locked` + `rbd.snapshot_add` in one atomic op, which librbd
//! cannot do for another client's lock.

use super::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::cls::{StockRead, StockWrite};

/// `CEPH_NOSNAP`: the image head, as a snapshot id.
pub const CEPH_NOSNAP: u64 = u64::MAX - 1;

/// Input of `get_features`: a snapshot id and whether the caller opens read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetFeatures {
    /// `CEPH_NOSNAP` for the head.
    pub snap_id: u64,
    /// Read-only callers get the features of an image with unknown incompatible bits too.
    pub read_only: bool,
}

impl GetFeatures {
    /// The head, read-only: what an inspection asks.
    pub const HEAD_READ_ONLY: GetFeatures = GetFeatures { snap_id: CEPH_NOSNAP, read_only: true };
}

impl Encode for GetFeatures {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.snap_id).u8(u8::from(self.read_only));
    }
}

/// Reply of `get_features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Feature bits (`RBD_FEATURE_*`).
    pub features: u64,
    /// The incompatible ones among them.
    pub incompatible: u64,
}

impl Decode for Features {
    fn decode(r: &mut Reader<'_>) -> Result<Features, DecodeError> {
        Ok(Features { features: r.u64("truncated features")?, incompatible: r.u64("truncated features")? })
    }
}

/// Reply of `get_data_pool`: the pool holding the image's data objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPool(pub Option<i64>);

impl Decode for DataPool {
    fn decode(r: &mut Reader<'_>) -> Result<DataPool, DecodeError> {
        let pool = r.u64("truncated data pool")? as i64;
        Ok(DataPool((pool >= 0).then_some(pool)))
    }
}

/// The namespace of an image snapshot (`cls::rbd::SnapshotNamespace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotNamespace {
    /// `SNAPSHOT_NAMESPACE_TYPE_USER`: an ordinary snapshot.
    User,
}

impl Encode for SnapshotNamespace {
    fn encode(&self, w: &mut Writer) {
        w.versioned(1, 1, |w| match self {
            SnapshotNamespace::User => {
                w.u32(0); // SNAPSHOT_NAMESPACE_TYPE_USER, no fields
            }
        });
    }
}

/// Input of `snapshot_add`: name, id, namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotAdd {
    /// The snapshot's name.
    pub name: String,
    /// A self-managed snapshot id allocated in the image's data pool, newer than every
    /// snapshot of the image (else `ESTALE`).
    pub snap_id: u64,
    /// Its namespace.
    pub namespace: SnapshotNamespace,
}

impl Encode for SnapshotAdd {
    fn encode(&self, w: &mut Writer) {
        w.string(&self.name).u64(self.snap_id);
        self.namespace.encode(w);
    }
}

/// Features of the head (`get_features`).
pub const GET_FEATURES: StockRead<GetFeatures, Features> = StockRead::new("rbd", "get_features");
/// The data pool (`get_data_pool`; `None` = the image's own pool).
pub const GET_DATA_POOL: StockRead<(), DataPool> = StockRead::new("rbd", "get_data_pool");
/// An image's name from its id, on `rbd_directory` (`dir_get_name`; `ENOENT` when the
/// directory does not have it: deleted, or in the trash).
pub const DIR_GET_NAME: StockRead<String, String> = StockRead::new("rbd", "dir_get_name");
/// A snapshot's name from its id, on the image header (`get_snapshot_name`).
pub const GET_SNAPSHOT_NAME: StockRead<u64, String> = StockRead::new("rbd", "get_snapshot_name");
/// Adds a snapshot to the header (`snapshot_add`).
pub const SNAPSHOT_ADD: StockWrite<SnapshotAdd> = StockWrite::new("rbd", "snapshot_add");
/// Marks every object of the head object map clean after a snapshot (fast-diff;
/// `object_map_snap_add`, on `rbd_object_map.<id>`).
pub const OBJECT_MAP_SNAP_ADD: StockWrite<()> = StockWrite::new("rbd", "object_map_snap_add");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceph::encoding::Encode;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn snapshot_add_matches_golden_bytes() {
        let name = ".rbd_cg.0000000000000002_0123456789abcdef_fedcba9876543210";
        let req = SnapshotAdd { name: name.into(), snap_id: 0x1c, namespace: SnapshotNamespace::User }.to_bytes();
        assert_eq!(req.len(), 80);
        assert_eq!(hex(&req[..4]), "3a 00 00 00");
        assert_eq!(hex(&req[62..]), "1c 00 00 00 00 00 00 00 01 01 04 00 00 00 00 00 00 00");
    }

    #[test]
    fn cls_rbd_features_and_data_pool() {
        assert_eq!(hex(&GetFeatures::HEAD_READ_ONLY.to_bytes()), "fe ff ff ff ff ff ff ff 01");
        let mut reply = 61u64.to_le_bytes().to_vec();
        reply.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(Features::from_bytes(&reply), Ok(Features { features: 61, incompatible: 0 }));
        assert!(Features::from_bytes(&reply[..12]).is_err());
        assert_eq!(DataPool::from_bytes(&(-1i64).to_le_bytes()), Ok(DataPool(None)));
        assert_eq!(DataPool::from_bytes(&7i64.to_le_bytes()), Ok(DataPool(Some(7))));
    }

    #[test]
    fn cls_rbd_strings_and_snap_ids() {
        assert_eq!(hex(&"ab".to_owned().to_bytes()), "02 00 00 00 61 62");
        assert_eq!(hex(&0x1cu64.to_bytes()), "1c 00 00 00 00 00 00 00");
        assert_eq!(String::from_bytes(&"disk-1".to_owned().to_bytes()), Ok("disk-1".to_owned()));
        assert!(String::from_bytes(&[5, 0, 0, 0, b'a']).is_err());
        assert!(String::from_bytes(&[1, 0, 0, 0, 0xff]).is_err());
    }
}
