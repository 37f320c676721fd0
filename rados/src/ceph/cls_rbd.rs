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

/// The namespace of an image snapshot (`cls::rbd::SnapshotNamespace`). Stock tools find
/// snapshots by name only in the user namespace; `rbd snap ls` without `--all` and
/// `rbd snap purge` skip every other namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotNamespace {
    /// `SNAPSHOT_NAMESPACE_TYPE_USER`: an ordinary snapshot.
    User,
    /// `SNAPSHOT_NAMESPACE_TYPE_GROUP`: a member snapshot of a group snapshot
    /// (`GroupSnapshotNamespace`). librbd resolves `group_id` in `rbd_group_directory` of
    /// pool `group_pool` only to show it; nothing checks it.
    Group {
        /// The group's pool id (`-1`: no pool, so no stock group can ever match).
        group_pool: i64,
        /// The group's id.
        group_id: String,
        /// The group snapshot's id.
        group_snapshot_id: String,
    },
    /// `SNAPSHOT_NAMESPACE_TYPE_TRASH`: removed, kept until its clone-v2 children go.
    Trash {
        /// The name it had.
        original_name: String,
    },
    /// Any other namespace (mirror, or one newer than we know), by its type.
    Other(u32),
}

impl SnapshotNamespace {
    /// `SNAPSHOT_NAMESPACE_TYPE_*`.
    pub fn type_code(&self) -> u32 {
        match self {
            SnapshotNamespace::User => 0,
            SnapshotNamespace::Group { .. } => 1,
            SnapshotNamespace::Trash { .. } => 2,
            SnapshotNamespace::Other(t) => *t,
        }
    }
}

impl Encode for SnapshotNamespace {
    fn encode(&self, w: &mut Writer) {
        w.versioned(1, 1, |w| match self {
            SnapshotNamespace::User => {
                w.u32(0); // SNAPSHOT_NAMESPACE_TYPE_USER, no fields
            }
            SnapshotNamespace::Group { group_pool, group_id, group_snapshot_id } => {
                w.u32(1).i64(*group_pool).string(group_id).string(group_snapshot_id);
            }
            SnapshotNamespace::Trash { original_name } => {
                // Never written by us; encoded for completeness (original type: user).
                w.u32(2).string(original_name).u32(0);
            }
            SnapshotNamespace::Other(t) => {
                w.u32(*t);
            }
        });
    }
}

impl Decode for SnapshotNamespace {
    fn decode(r: &mut Reader<'_>) -> Result<SnapshotNamespace, DecodeError> {
        // Newer releases write ENCODE_START(2, 1): compat 1 is what we can read.
        let (_, mut body) = r.versioned(1, "truncated snapshot namespace")?;
        Ok(match body.u32("truncated snapshot namespace type")? {
            0 => SnapshotNamespace::User,
            1 => SnapshotNamespace::Group {
                group_pool: body.u64("truncated group namespace")? as i64,
                group_id: body.string("truncated group namespace")?,
                group_snapshot_id: body.string("truncated group namespace")?,
            },
            2 => SnapshotNamespace::Trash { original_name: body.string("truncated trash namespace")? },
            other => SnapshotNamespace::Other(other),
        })
    }
}

/// `RBD_PROTECTION_STATUS_UNPROTECTED`.
pub const PROTECTION_UNPROTECTED: u8 = 0;
/// `RBD_PROTECTION_STATUS_UNPROTECTING`: librbd's unprotect is checking for children.
pub const PROTECTION_UNPROTECTING: u8 = 1;
/// `RBD_PROTECTION_STATUS_PROTECTED`: `snapshot_remove` refuses it (`EBUSY`).
pub const PROTECTION_PROTECTED: u8 = 2;

/// The omap key of snapshot `snap_id` on an image header: `snapshot_<id: 16 hex>`.
pub fn snapshot_key(snap_id: u64) -> String {
    format!("snapshot_{snap_id:016x}")
}

/// A snapshot as `cls_rbd` stores it on the image header (`cls_rbd_snap`, under
/// [`snapshot_key`]): what we read of it, and everything after the namespace kept as raw
/// bytes so that [`SnapRecord::relabeled`] changes nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapRecord {
    struct_v: u8,
    compat: u8,
    /// Snapshot id.
    pub id: u64,
    /// Name (unique per namespace).
    pub name: String,
    /// Image size at the snapshot.
    pub image_size: u64,
    /// `PROTECTION_*`.
    pub protection_status: u8,
    /// Flags (object map invalid, ...).
    pub flags: u64,
    /// Namespace.
    pub namespace: SnapshotNamespace,
    /// Clone-v2 children attached to it.
    pub child_count: u32,
    /// Everything after the namespace (timestamp, child count, parent overlap, newer fields).
    tail: Vec<u8>,
    /// The stored bytes.
    raw: Vec<u8>,
}

impl SnapRecord {
    /// Decodes a stored `cls_rbd_snap`. Only the layout every Nautilus or newer OSD writes
    /// (`struct_v` ≥ 7, `compat` 8) is accepted: older layouts carry fields this client
    /// never rewrites.
    pub fn parse(bytes: &[u8]) -> Result<SnapRecord, DecodeError> {
        let mut r = Reader::new(bytes);
        let struct_v = r.u8("truncated snapshot record")?;
        let compat = r.u8("truncated snapshot record")?;
        if compat != 8 || struct_v < 7 {
            return Err(DecodeError("snapshot record of a pre-Nautilus layout"));
        }
        let len = r.u32("truncated snapshot record")? as usize;
        let mut body = Reader::new(r.take(len, "truncated snapshot record")?);
        let id = body.u64("truncated snapshot record")?;
        let name = body.string("truncated snapshot name")?;
        let image_size = body.u64("truncated snapshot record")?;
        let protection_status = body.u8("truncated snapshot record")?;
        let flags = body.u64("truncated snapshot record")?;
        let namespace = SnapshotNamespace::decode(&mut body)?;
        let tail = body.remaining().to_vec();
        let mut rest = Reader::new(&tail);
        rest.take(8, "truncated snapshot timestamp")?;
        let child_count = rest.u32("truncated snapshot child count")?;
        Ok(SnapRecord {
            struct_v,
            compat,
            id,
            name,
            image_size,
            protection_status,
            flags,
            namespace,
            child_count,
            tail,
            raw: bytes.to_vec(),
        })
    }

    /// The bytes it was parsed from.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The same record with another name and namespace, every other byte kept.
    pub fn relabeled(&self, name: &str, namespace: &SnapshotNamespace) -> Vec<u8> {
        let mut w = Writer::default();
        w.versioned(self.struct_v, self.compat, |w| {
            w.u64(self.id).string(name).u64(self.image_size).u8(self.protection_status).u64(self.flags);
            namespace.encode(w);
            w.bytes(&self.tail);
        });
        w.finish()
    }
}

/// Input of `set_protection_status`: snapshot id and `PROTECTION_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetProtectionStatus {
    /// The snapshot.
    pub snap_id: u64,
    /// `PROTECTION_*`.
    pub status: u8,
}

impl Encode for SetProtectionStatus {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.snap_id).u8(self.status);
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
/// Sets a snapshot's protection status (`set_protection_status`; needs the layering
/// feature, else `ENOEXEC`; any namespace).
pub const SET_PROTECTION_STATUS: StockWrite<SetProtectionStatus> = StockWrite::new("rbd", "set_protection_status");
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

    fn unhex(text: &str) -> Vec<u8> {
        text.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    /// `snapshot_add` with the group namespace, as measured against Pacific's cls_rbd
    /// (the request it accepted and stored).
    #[test]
    fn group_namespace_snapshot_add_matches_golden_bytes() {
        let req = SnapshotAdd {
            name: ".rbd_cg.0000000000000001_0123456789abcdef_5a".into(),
            snap_id: 7,
            namespace: SnapshotNamespace::Group {
                group_pool: 1,
                group_id: "0123456789abcdef".into(),
                group_snapshot_id: "5a".into(),
            },
        };
        let golden = "2c 00 00 00 2e 72 62 64 5f 63 67 2e 30 30 30 30 30 30 30 30 30 30 30 30 30 30 30 31 5f 30 31 32 \
                      33 34 35 36 37 38 39 61 62 63 64 65 66 5f 35 61 07 00 00 00 00 00 00 00 01 01 26 00 00 00 01 00 \
                      00 00 01 00 00 00 00 00 00 00 10 00 00 00 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 02 00 \
                      00 00 35 61";
        assert_eq!(req.to_bytes(), unhex(golden));
        let no_pool = SnapshotNamespace::Group { group_pool: -1, group_id: "ab".into(), group_snapshot_id: "c".into() };
        assert_eq!(
            hex(&no_pool.to_bytes()),
            "01 01 17 00 00 00 01 00 00 00 ff ff ff ff ff ff ff ff 02 00 00 00 61 62 01 00 00 00 63"
        );
        assert_eq!(SnapshotNamespace::from_bytes(&no_pool.to_bytes()), Ok(no_pool));
        assert_eq!(
            hex(&SetProtectionStatus { snap_id: 4, status: PROTECTION_PROTECTED }.to_bytes()),
            "04 00 00 00 00 00 00 00 02"
        );
        assert_eq!(snapshot_key(0x1a), "snapshot_000000000000001a");
    }

    /// A record stored by stock `rbd group snap create` on Pacific: read, and relabeled to
    /// the user namespace and back byte for byte.
    #[test]
    fn stored_snapshot_records_parse_and_relabel_losslessly() {
        let stored = unhex(
            "08 08 7e 00 00 00 04 00 00 00 00 00 00 00 22 00 00 00 2e 67 72 6f 75 70 2e 31 5f 31 30 32 30 36 62 \
             38 62 34 35 36 37 5f 31 30 32 61 36 62 38 62 34 35 36 37 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 01 01 2c 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 0c 00 00 00 31 30 32 30 36 62 38 62 34 35 \
             36 37 0c 00 00 00 31 30 32 61 36 62 38 62 34 35 36 37 1f bc 16 6b 7a 0e 99 05 00 00 00 00 00",
        );
        let record = SnapRecord::parse(&stored).unwrap();
        assert_eq!(
            (record.id, record.name.as_str(), record.image_size),
            (4, ".group.1_10206b8b4567_102a6b8b4567", 64 << 20)
        );
        assert_eq!((record.protection_status, record.flags, record.child_count), (0, 0, 0));
        let group = SnapshotNamespace::Group {
            group_pool: 1,
            group_id: "10206b8b4567".into(),
            group_snapshot_id: "102a6b8b4567".into(),
        };
        assert_eq!(record.namespace, group);
        assert_eq!(record.relabeled(&record.name, &record.namespace), stored);
        let user = record.relabeled("shown", &SnapshotNamespace::User);
        let back = SnapRecord::parse(&user).unwrap();
        assert_eq!((back.name.as_str(), &back.namespace, back.id), ("shown", &SnapshotNamespace::User, 4));
        assert_eq!(back.relabeled(".group.1_10206b8b4567_102a6b8b4567", &group), stored);
        // Pre-Nautilus layouts and short buffers are refused, never misread.
        let mut old = stored.clone();
        old[1] = 1;
        assert!(SnapRecord::parse(&old).is_err());
        for cut in [0, 5, 20, stored.len() - 6] {
            assert!(SnapRecord::parse(&stored[..cut]).is_err(), "{cut}");
        }
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
