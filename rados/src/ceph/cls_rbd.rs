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

/// Reply of `get_size`: the object order (object size `1 << order`) and the size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    /// Objects are `1 << order` bytes.
    pub order: u8,
    /// The image (or snapshot) size in bytes.
    pub size: u64,
}

impl Decode for ImageSize {
    fn decode(r: &mut Reader<'_>) -> Result<ImageSize, DecodeError> {
        Ok(ImageSize { order: r.u8("truncated image size")?, size: r.u64("truncated image size")? })
    }
}

/// Reply of `get_snapcontext`: what every write to the image's data objects must carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapContext {
    /// The newest snapshot id the image ever had (`snap_seq`).
    pub seq: u64,
    /// The ids of its snapshots, newest first.
    pub snaps: Vec<u64>,
}

impl Decode for SnapContext {
    fn decode(r: &mut Reader<'_>) -> Result<SnapContext, DecodeError> {
        let seq = r.u64("truncated snap context")?;
        let count = r.u32("truncated snap context")? as usize;
        // Never trust a count for an allocation: each id takes 8 bytes of what is left.
        if count > r.remaining().len() / 8 {
            return Err(DecodeError("truncated snap context ids"));
        }
        let snaps = (0..count).map(|_| r.u64("truncated snap context ids")).collect::<Result<Vec<_>, _>>()?;
        Ok(SnapContext { seq, snaps })
    }
}

/// Reply of `get_stripe_unit_count` (only answered for images with striping v2; others
/// get `ENOEXEC` and use one object as the stripe unit and a count of 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeUnitCount {
    /// Stripe unit in bytes.
    pub stripe_unit: u64,
    /// Objects a stripe spans.
    pub stripe_count: u64,
}

impl Decode for StripeUnitCount {
    fn decode(r: &mut Reader<'_>) -> Result<StripeUnitCount, DecodeError> {
        Ok(StripeUnitCount {
            stripe_unit: r.u64("truncated stripe unit")?,
            stripe_count: r.u64("truncated stripe count")?,
        })
    }
}

/// Reply of `parent_get` (`cls::rbd::ParentImageSpec`); `pool_id` -1 means no parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentImageSpec {
    /// The parent's pool, -1 when there is none.
    pub pool_id: i64,
    /// The parent's RBD namespace.
    pub pool_namespace: String,
    /// The parent's image id.
    pub image_id: String,
    /// The parent snapshot.
    pub snap_id: u64,
}

impl ParentImageSpec {
    /// Whether a parent is recorded.
    pub fn exists(&self) -> bool {
        self.pool_id >= 0
    }
}

impl Decode for ParentImageSpec {
    fn decode(r: &mut Reader<'_>) -> Result<ParentImageSpec, DecodeError> {
        let (_, mut body) = r.versioned(1, "truncated parent spec")?;
        Ok(ParentImageSpec {
            pool_id: body.u64("truncated parent spec")? as i64,
            pool_namespace: body.string("truncated parent spec")?,
            image_id: body.string("truncated parent spec")?,
            snap_id: body.u64("truncated parent spec")?,
        })
    }
}

/// Reply of `parent_overlap_get` (`std::optional<uint64_t>`): how much of the parent the
/// image (head or snapshot) still maps; `None` when it has no parent there (for the head:
/// not a clone, or flattened while older snapshots still refer to the parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentOverlap(pub Option<u64>);

impl Decode for ParentOverlap {
    fn decode(r: &mut Reader<'_>) -> Result<ParentOverlap, DecodeError> {
        match r.u8("truncated parent overlap")? {
            0 => Ok(ParentOverlap(None)),
            _ => Ok(ParentOverlap(Some(r.u64("truncated parent overlap")?))),
        }
    }
}

/// Reply of the legacy `get_parent(snap_id)` (pre-Nautilus OSDs): pool -1 means no parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyParent {
    /// The parent's pool, -1 when there is none.
    pub pool_id: i64,
    /// The parent's image id.
    pub image_id: String,
    /// The parent snapshot.
    pub snap_id: u64,
    /// Bytes of the parent mapped under the child.
    pub overlap: u64,
}

impl Decode for LegacyParent {
    fn decode(r: &mut Reader<'_>) -> Result<LegacyParent, DecodeError> {
        Ok(LegacyParent {
            pool_id: r.u64("truncated parent")? as i64,
            image_id: r.string("truncated parent")?,
            snap_id: r.u64("truncated parent")?,
            overlap: r.u64("truncated parent")?,
        })
    }
}

/// The states of an object in an object map (`include/rbd/object_map_types.h`), two bits
/// per object.
pub mod object_state {
    /// The object does not exist.
    pub const NONEXISTENT: u8 = 0;
    /// The object exists (and, with fast-diff, changed since the newest snapshot).
    pub const EXISTS: u8 = 1;
    /// A removal is under way (set before the remove, cleared after it).
    pub const PENDING: u8 = 2;
    /// fast-diff: the object exists, unchanged since the newest snapshot.
    pub const EXISTS_CLEAN: u8 = 3;
}

/// Input of `object_map_update` on `rbd_object_map.<id>`: objects `[start, end)` take
/// `new_state`, those whose state is `current_state` only when it is given (a filter of
/// `EXISTS` also matches `EXISTS_CLEAN`). `ERANGE` past the end of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMapUpdate {
    /// First object.
    pub start: u64,
    /// One past the last object.
    pub end: u64,
    /// The state to set ([`object_state`]).
    pub new_state: u8,
    /// Only objects in this state change.
    pub current_state: Option<u8>,
}

impl Encode for ObjectMapUpdate {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.start).u64(self.end).u8(self.new_state);
        match self.current_state {
            None => w.u8(0),
            Some(state) => w.u8(1).u8(state),
        };
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
/// Object order and size of the head or a snapshot (`get_size`).
pub const GET_SIZE: StockRead<u64, ImageSize> = StockRead::new("rbd", "get_size");
/// Prefix of the data objects' names, `rbd_data.<id>` (`get_object_prefix`).
pub const GET_OBJECT_PREFIX: StockRead<(), String> = StockRead::new("rbd", "get_object_prefix");
/// The snapshot context for writes to the data objects (`get_snapcontext`).
pub const GET_SNAPCONTEXT: StockRead<(), SnapContext> = StockRead::new("rbd", "get_snapcontext");
/// Striping parameters (`get_stripe_unit_count`; `ENOEXEC` without striping v2).
pub const GET_STRIPE_UNIT_COUNT: StockRead<(), StripeUnitCount> = StockRead::new("rbd", "get_stripe_unit_count");
/// The parent, if any (`parent_get`, Nautilus and later; older OSDs: `EOPNOTSUPP`).
pub const PARENT_GET: StockRead<(), ParentImageSpec> = StockRead::new("rbd", "parent_get");
/// The parent overlap of the head (`CEPH_NOSNAP`) or a snapshot (`parent_overlap_get`).
pub const PARENT_OVERLAP_GET: StockRead<u64, ParentOverlap> = StockRead::new("rbd", "parent_overlap_get");
/// The parent of the head or a snapshot, the legacy way (`get_parent`).
pub const GET_PARENT: StockRead<u64, LegacyParent> = StockRead::new("rbd", "get_parent");
/// Updates a range of the head object map (`object_map_update`; guard it with
/// `lock.assert_locked` of the map's own lock in the same op, as librbd does).
pub const OBJECT_MAP_UPDATE: StockWrite<ObjectMapUpdate> = StockWrite::new("rbd", "object_map_update");
/// Adds a snapshot to the header (`snapshot_add`).
pub const SNAPSHOT_ADD: StockWrite<SnapshotAdd> = StockWrite::new("rbd", "snapshot_add");
/// Marks every object of the head object map clean after a snapshot (fast-diff;
/// `object_map_snap_add`, on `rbd_object_map.<id>`).
pub const OBJECT_MAP_SNAP_ADD: StockWrite<()> = StockWrite::new("rbd", "object_map_snap_add");
/// Removes a snapshot from the header (`snapshot_remove`; `ENOENT` when it is gone, `EBUSY`
/// while it is protected or has clone-v2 children).
pub const SNAPSHOT_REMOVE: StockWrite<u64> = StockWrite::new("rbd", "snapshot_remove");
/// Merges the object map of a snapshot being removed into the next newer one's (or the
/// head's), so that fast-diff still sees the objects it had dirty (`object_map_snap_remove`,
/// on the next map; input: the removed map's encoded bit vector, as stored).
pub const OBJECT_MAP_SNAP_REMOVE: StockWrite<EncodedObjectMap> = StockWrite::new("rbd", "object_map_snap_remove");

/// A snapshot's protection status (`get_protection_status`): 0 unprotected, 1 unprotecting,
/// 2 protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectionStatus(pub u8);

impl ProtectionStatus {
    /// Neither protected nor being unprotected.
    pub const UNPROTECTED: ProtectionStatus = ProtectionStatus(0);
}

impl Decode for ProtectionStatus {
    fn decode(r: &mut Reader<'_>) -> Result<ProtectionStatus, DecodeError> {
        Ok(ProtectionStatus(r.u8("truncated protection status")?))
    }
}

/// How many clone-v2 children a snapshot has: the count that starts `children_list`'s
/// reply (a set of child image specs; the specs themselves are not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildCount(pub u32);

impl Decode for ChildCount {
    fn decode(r: &mut Reader<'_>) -> Result<ChildCount, DecodeError> {
        Ok(ChildCount(r.u32("truncated children list")?))
    }
}

/// The protection status of a snapshot (`get_protection_status`).
pub const GET_PROTECTION_STATUS: StockRead<u64, ProtectionStatus> = StockRead::new("rbd", "get_protection_status");
/// The clone-v2 children of a snapshot (`children_list`), counted.
pub const CHILDREN_LIST: StockRead<u64, ChildCount> = StockRead::new("rbd", "children_list");

/// An object map's bit vector exactly as `rbd_object_map.<id>[.<snap id>]` stores it (Ceph's
/// `BitVector<2>` encoding), passed on untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedObjectMap(pub Vec<u8>);

impl Encode for EncodedObjectMap {
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.0);
    }
}

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
    fn unhex(s: &str) -> Vec<u8> {
        s.split(' ').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    /// Replies captured from a Ceph 16.2.15 OSD (python3-rados `Ioctx.execute` on
    /// `rbd_header.<id>`): image `gold` (2600 KiB, 64 KiB objects, snapshots 4 and 5),
    /// its clone `child` (of `gold@s1`), `striped` (16 KiB x 4) and `dp` (data pool 3).
    #[test]
    fn header_replies_of_a_real_osd_decode() {
        let nosnap = CEPH_NOSNAP.to_bytes();
        assert_eq!(hex(&nosnap), "fe ff ff ff ff ff ff ff");
        assert_eq!(
            ImageSize::from_bytes(&unhex("10 00 a0 28 00 00 00 00 00")),
            Ok(ImageSize { order: 16, size: 2600 << 10 })
        );
        assert!(ImageSize::from_bytes(&unhex("10 00 a0 28 00")).is_err());
        let prefix = unhex("15 00 00 00 72 62 64 5f 64 61 74 61 2e 31 30 33 31 63 34 62 34 33 35 38 30");
        assert_eq!(String::from_bytes(&prefix), Ok("rbd_data.1031c4b43580".to_owned()));
        let snapc = unhex("05 00 00 00 00 00 00 00 02 00 00 00 05 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00");
        assert_eq!(SnapContext::from_bytes(&snapc), Ok(SnapContext { seq: 5, snaps: vec![5, 4] }));
        for cut in 0..snapc.len() {
            assert!(SnapContext::from_bytes(&snapc[..cut]).is_err(), "{cut} bytes decoded");
        }
        // A huge count with few bytes behind it is refused before anything is allocated.
        assert!(SnapContext::from_bytes(&unhex("05 00 00 00 00 00 00 00 ff ff ff ff 05 00")).is_err());
        assert_eq!(
            StripeUnitCount::from_bytes(&unhex("00 40 00 00 00 00 00 00 04 00 00 00 00 00 00 00")),
            Ok(StripeUnitCount { stripe_unit: 16 << 10, stripe_count: 4 })
        );
        let none = ParentImageSpec::from_bytes(&unhex(
            "01 01 18 00 00 00 ff ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00 fe ff ff ff ff ff ff ff",
        ))
        .unwrap();
        assert!(!none.exists());
        let parent = ParentImageSpec::from_bytes(&unhex(
            "01 01 24 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 0c 00 00 00 31 30 33 31 63 34 62 34 33 35 38 30 \
             04 00 00 00 00 00 00 00",
        ))
        .unwrap();
        assert_eq!(
            parent,
            ParentImageSpec { pool_id: 1, pool_namespace: String::new(), image_id: "1031c4b43580".into(), snap_id: 4 }
        );
        assert!(parent.exists());
        assert_eq!(ParentOverlap::from_bytes(&[0]), Ok(ParentOverlap(None)));
        assert_eq!(
            ParentOverlap::from_bytes(&unhex("01 00 a0 28 00 00 00 00 00")),
            Ok(ParentOverlap(Some(2600 << 10)))
        );
        assert!(ParentOverlap::from_bytes(&unhex("01 00 a0")).is_err());
        let legacy = LegacyParent::from_bytes(&unhex(
            "01 00 00 00 00 00 00 00 0c 00 00 00 31 30 33 31 63 34 62 34 33 35 38 30 04 00 00 00 00 00 00 00 \
             00 a0 28 00 00 00 00 00",
        ))
        .unwrap();
        assert_eq!(
            legacy,
            LegacyParent { pool_id: 1, image_id: "1031c4b43580".into(), snap_id: 4, overlap: 2600 << 10 }
        );
        let no_legacy = LegacyParent::from_bytes(&unhex(
            "ff ff ff ff ff ff ff ff 00 00 00 00 fe ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00",
        ))
        .unwrap();
        assert_eq!(no_legacy.pool_id, -1);
        assert_eq!(DataPool::from_bytes(&unhex("03 00 00 00 00 00 00 00")), Ok(DataPool(Some(3))));
    }

    /// `object_map_update` as `cls_rbd.cc` decodes it (`u64 start, u64 end, u8 state,
    /// optional<u8> current`): the bytes the write-fence research's raw writer sent to a
    /// 16.2.15 OSD, which updated the map as librbd's own updates do.
    #[test]
    fn object_map_update_matches_golden_bytes() {
        let update = ObjectMapUpdate { start: 3, end: 4, new_state: object_state::EXISTS, current_state: None };
        assert_eq!(hex(&update.to_bytes()), "03 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 01 00");
        let filtered = ObjectMapUpdate {
            start: 0x10,
            end: 0x12,
            new_state: object_state::NONEXISTENT,
            current_state: Some(object_state::PENDING),
        };
        assert_eq!(hex(&filtered.to_bytes()), "10 00 00 00 00 00 00 00 12 00 00 00 00 00 00 00 00 01 02");
    }
}
