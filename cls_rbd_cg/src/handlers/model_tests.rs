//! Random sequences of class calls against a reference model (issue #14).
//!
//! The unit tests next to each handler check the cases someone thought of; this module
//! checks the ones nobody did. [`Model`] is a second, deliberately plain implementation of
//! what `docs/FORMAT.md` section 7 says each method does to the directory, the `cg_id`
//! objects, the group headers (members, snapshots, the in-progress mark) and the images'
//! back-references: maps and `match`es, no encoding, no omap. proptest generates sequences
//! of calls over a small world (two headers, three names, three images, three snapshot
//! names, some invalid ids) so that calls collide often, runs each through the real
//! registration table on the in-memory store (the OSD's transaction semantics), and after
//! every call compares
//!
//! - the result: success, or the exact errno the model predicts;
//! - the reply of read calls with the model's view;
//! - every stored object, decoded, with the model's state (an unknown key is a failure);
//! - the invariants that hold whatever the call sequence: `member_count` and
//!   `snapshot_count` equal the number of member and snapshot keys, every `snapname_` key
//!   names a record of that name, `next_snap_seq` is above every `seq`, the in-progress
//!   mark names an existing snapshot.
//!
//! A failing sequence is shrunk by proptest to a shortest one; such sequences are kept as
//! the plain `#[test]`s at the end (`regression_*`), which run on every `cargo test`.

use super::testing::Harness;
use crate::methods;
use crate::store::MemObject;
use proptest::prelude::*;
use rbd_cg_contract::methods::{
    self as m, BackRefRequest, DirListRequest, Empty, GroupCreateRequest, IdRequest, MemberAddRequest,
    MemberListRequest, MemberRequest, NameAndId, NameRequest, RenameRequest, SnapCreateRequest, SnapFinishRequest,
    SnapListRequest, SnapRemoveRequest, SnapRenameRequest, SnapRequest,
};
use rbd_cg_contract::names::{
    backref_key, member_key, snap_key, BACKREF_KEY_PREFIX, DIRECTORY_OBJECT, DIR_ID_KEY_PREFIX, DIR_NAME_KEY_PREFIX,
    MEMBER_KEY_PREFIX, NEXT_SNAP_SEQ_KEY, SNAPSHOT_IN_PROGRESS_KEY, SNAP_KEY_PREFIX, SNAP_NAME_KEY_PREFIX,
};
use rbd_cg_contract::records::{
    DirEntry, DirIdEntry, DirState, GroupHeader, GroupIdRecord, GroupRef, HeaderState, ImageRef, MemberRecord,
    MemberState, SnapInProgress, SnapNameEntry, SnapOperation, SnapSeq, SnapshotMember, SnapshotRecord, SnapshotState,
};
use rbd_cg_contract::{decode, encode, CgError, Versioned};
use std::collections::BTreeMap;

const POOL: i64 = 3;
/// Group ids a request may carry: two real ones and an invalid one (`_` is not allowed).
const GROUP_IDS: [&str; 3] = ["g1", "g2", "bad_id"];
/// The header objects calls go to: `cg_header.g1`, `cg_header.g2`.
const HEADERS: [&str; 2] = ["g1", "g2"];
const NAMES: [&str; 3] = ["a", "b", "c"];
/// Images; `i2` has no `rbd_header` object (deleted behind the group's back).
const IMAGES: [&str; 3] = ["i0", "i1", "i2"];
const IMAGES_WITH_HEADER: [&str; 2] = ["i0", "i1"];
const SNAP_NAMES: [&str; 3] = ["s", "t", "u"];
/// Snapshot ids: two valid, one invalid.
const SNAP_IDS: [&str; 3] = ["x1", "x2", "X-1"];
/// Member limits: 0 and 5000 are out of range.
const LIMITS: [u32; 4] = [0, 1, 2, 5000];

fn header_oid(h: usize) -> String {
    format!("cg_header.{}", HEADERS[h])
}

fn id_oid(n: usize) -> String {
    format!("cg_id.{}", NAMES[n])
}

fn image_oid(i: usize) -> String {
    format!("rbd_header.{}", IMAGES[i])
}

fn image(i: usize) -> ImageRef {
    ImageRef { pool_id: POOL, namespace: String::new(), image_id: IMAGES[i].to_owned() }
}

fn group_ref(g: usize) -> GroupRef {
    GroupRef { pool_id: POOL, namespace: String::new(), group_id: GROUP_IDS[g].to_owned() }
}

fn valid_id(id: &str) -> bool {
    rbd_cg_contract::names::validate_group_id(id).is_ok()
}

/// Which `image_snaps` a `snap_create_finish` sends, relative to the record's members.
#[derive(Debug, Clone, Copy)]
pub(super) enum FinishKind {
    /// One pair per member, in order: what the client sends.
    Exact,
    /// One pair too few (or one too many for an empty member list).
    WrongCount,
    /// The right count with the images in reverse order.
    Reversed,
}

/// One class call. `h` picks the header object, `g` the group id in the request (often
/// another group's or an invalid one), `n`/`n2` names, `i` images, `s`/`s2` snapshot names.
#[derive(Debug, Clone)]
pub(super) enum Op {
    DirAdd { n: usize, g: usize },
    DirSetReady { n: usize, g: usize },
    DirRenameBegin { g: usize, n: usize, n2: usize },
    DirRenameFinish { g: usize, n: usize, n2: usize },
    DirRemove { n: usize, g: usize },
    DirGet { n: usize },
    DirList,
    IdCreate { n: usize, g: usize },
    IdRemove { n: usize, g: usize },
    IdGet { n: usize },
    GroupCreate { h: usize, g: usize, n: usize },
    GroupSetName { h: usize, g: usize, n: usize, n2: usize },
    GroupBeginRemove { h: usize, g: usize },
    GroupRemove { h: usize, g: usize },
    GroupGet { h: usize },
    MemberAddBegin { h: usize, g: usize, i: usize, limit: usize },
    MemberAddFinish { h: usize, g: usize, i: usize },
    MemberRemoveBegin { h: usize, g: usize, i: usize },
    MemberRemoveFinish { h: usize, g: usize, i: usize },
    MemberList { h: usize },
    Link { i: usize, g: usize },
    Unlink { i: usize, g: usize },
    ImageGroups { i: usize },
    SnapCreateBegin { h: usize, g: usize, s: usize, id: usize, limit: usize },
    SnapCreateFinish { h: usize, g: usize, s: usize, kind: FinishKind },
    SnapRemoveBegin { h: usize, g: usize, s: usize, undo: bool },
    SnapRemoveFinish { h: usize, g: usize, s: usize },
    SnapRename { h: usize, g: usize, s: usize, s2: usize },
    SnapRollbackBegin { h: usize, g: usize, s: usize },
    SnapRollbackFinish { h: usize, g: usize, s: usize },
    SnapGet { h: usize, g: usize, s: usize },
    SnapList { h: usize },
}

/// A group id index that is usually the header's own (so calls mostly make progress).
fn gid_for(h: usize) -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(h), 1 => 0..GROUP_IDS.len()]
}

fn on_header<F, S>(f: F) -> impl Strategy<Value = Op>
where
    F: Fn(usize, usize) -> S + Clone + 'static,
    S: Strategy<Value = Op> + 'static,
{
    (0..HEADERS.len()).prop_flat_map(move |h| {
        let f = f.clone();
        gid_for(h).prop_flat_map(move |g| f(h, g))
    })
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    let n = || 0..NAMES.len();
    let g = || 0..GROUP_IDS.len();
    let i = || 0..IMAGES.len();
    let s = || 0..SNAP_NAMES.len();
    let kind =
        prop_oneof![6 => Just(FinishKind::Exact), 1 => Just(FinishKind::WrongCount), 1 => Just(FinishKind::Reversed)];
    // (weight, strategy): membership and snapshot calls most often, where the races are.
    let arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (3, (n(), g()).prop_map(|(n, g)| Op::DirAdd { n, g }).boxed()),
        (3, (n(), g()).prop_map(|(n, g)| Op::DirSetReady { n, g }).boxed()),
        (2, (g(), n(), n()).prop_map(|(g, n, n2)| Op::DirRenameBegin { g, n, n2 }).boxed()),
        (2, (g(), n(), n()).prop_map(|(g, n, n2)| Op::DirRenameFinish { g, n, n2 }).boxed()),
        (2, (n(), g()).prop_map(|(n, g)| Op::DirRemove { n, g }).boxed()),
        (1, n().prop_map(|n| Op::DirGet { n }).boxed()),
        (1, Just(Op::DirList).boxed()),
        (2, (n(), g()).prop_map(|(n, g)| Op::IdCreate { n, g }).boxed()),
        (1, (n(), g()).prop_map(|(n, g)| Op::IdRemove { n, g }).boxed()),
        (1, n().prop_map(|n| Op::IdGet { n }).boxed()),
        (4, on_header(move |h, g| n().prop_map(move |n| Op::GroupCreate { h, g, n })).boxed()),
        (1, on_header(move |h, g| (n(), n()).prop_map(move |(n, n2)| Op::GroupSetName { h, g, n, n2 })).boxed()),
        (1, on_header(|h, g| Just(Op::GroupBeginRemove { h, g })).boxed()),
        (1, on_header(|h, g| Just(Op::GroupRemove { h, g })).boxed()),
        (1, (0..HEADERS.len()).prop_map(|h| Op::GroupGet { h }).boxed()),
        (
            6,
            on_header(move |h, g| {
                (i(), 0..LIMITS.len()).prop_map(move |(i, limit)| Op::MemberAddBegin { h, g, i, limit })
            })
            .boxed(),
        ),
        (5, on_header(move |h, g| i().prop_map(move |i| Op::MemberAddFinish { h, g, i })).boxed()),
        (3, on_header(move |h, g| i().prop_map(move |i| Op::MemberRemoveBegin { h, g, i })).boxed()),
        (3, on_header(move |h, g| i().prop_map(move |i| Op::MemberRemoveFinish { h, g, i })).boxed()),
        (1, (0..HEADERS.len()).prop_map(|h| Op::MemberList { h }).boxed()),
        (2, (i(), g()).prop_map(|(i, g)| Op::Link { i, g }).boxed()),
        (1, (i(), g()).prop_map(|(i, g)| Op::Unlink { i, g }).boxed()),
        (1, i().prop_map(|i| Op::ImageGroups { i }).boxed()),
        (
            6,
            on_header(move |h, g| {
                (s(), 0..SNAP_IDS.len(), 0..LIMITS.len()).prop_map(move |(s, id, limit)| Op::SnapCreateBegin {
                    h,
                    g,
                    s,
                    id,
                    limit,
                })
            })
            .boxed(),
        ),
        (
            5,
            on_header(move |h, g| {
                (s(), kind.clone()).prop_map(move |(s, kind)| Op::SnapCreateFinish { h, g, s, kind })
            })
            .boxed(),
        ),
        (
            3,
            on_header(move |h, g| {
                (s(), any::<bool>()).prop_map(move |(s, undo)| Op::SnapRemoveBegin { h, g, s, undo })
            })
            .boxed(),
        ),
        (3, on_header(move |h, g| s().prop_map(move |s| Op::SnapRemoveFinish { h, g, s })).boxed()),
        (2, on_header(move |h, g| (s(), s()).prop_map(move |(s, s2)| Op::SnapRename { h, g, s, s2 })).boxed()),
        (2, on_header(move |h, g| s().prop_map(move |s| Op::SnapRollbackBegin { h, g, s })).boxed()),
        (2, on_header(move |h, g| s().prop_map(move |s| Op::SnapRollbackFinish { h, g, s })).boxed()),
        (1, on_header(move |h, g| s().prop_map(move |s| Op::SnapGet { h, g, s })).boxed()),
        (1, (0..HEADERS.len()).prop_map(|h| Op::SnapList { h }).boxed()),
    ];
    proptest::strategy::Union::new_weighted(arms)
}

// ---- the model ----------------------------------------------------------------------------

/// A group header object: the header record and its omap, as the model keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderM {
    header: GroupHeader,
    members: BTreeMap<String, MemberRecord>,
    snaps: BTreeMap<u64, SnapshotRecord>,
    snapnames: BTreeMap<String, u64>,
    next_seq: Option<u64>,
    in_progress: Option<SnapInProgress>,
}

/// Everything the calls can change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Model {
    dir: BTreeMap<String, DirEntry>,
    dir_ids: BTreeMap<String, String>,
    /// `cg_id.<name>` → id.
    ids: BTreeMap<String, String>,
    /// Header object (`g1`, `g2`) → its content.
    headers: BTreeMap<String, HeaderM>,
    /// Image (with a header object) → back-reference key → value.
    backrefs: BTreeMap<String, BTreeMap<String, GroupRef>>,
}

/// What a call does in the model: its result (`Err` = errno) and, for reads, the reply
/// (encoded, to compare bytes with the class's).
pub(super) type Outcome = Result<Option<Vec<u8>>, i32>;

fn errno(e: &CgError) -> i32 {
    e.errno()
}

fn reply<T: Versioned>(value: &T) -> Outcome {
    Ok(Some(encode(value).expect("model reply encodes")))
}

impl HeaderM {
    /// "header checks" of the member and snapshot methods: the header must hold `gid`.
    fn check_id(&self, gid: &str) -> Result<(), i32> {
        if self.header.id != gid {
            return Err(libc::EINVAL);
        }
        Ok(())
    }

    fn check_active(&self, gid: &str) -> Result<(), i32> {
        self.check_id(gid)?;
        if self.header.state != HeaderState::Active {
            return Err(libc::EBUSY);
        }
        Ok(())
    }

    fn snap_seq(&self, name: &str) -> Result<u64, i32> {
        self.snapnames.get(name).copied().ok_or(libc::ENOENT)
    }

    /// Every member, if all are attached (`EBUSY` at the first that is not).
    fn attached(&self) -> Result<Vec<ImageRef>, i32> {
        self.members
            .values()
            .map(|m| if m.state == MemberState::Attached { Ok(m.image.clone()) } else { Err(libc::EBUSY) })
            .collect()
    }
}

impl Model {
    fn header(&self, h: usize) -> Option<&HeaderM> {
        self.headers.get(HEADERS[h])
    }

    fn header_mut(&mut self, h: usize) -> &mut HeaderM {
        self.headers.get_mut(HEADERS[h]).expect("checked before")
    }

    /// The header of object `h` for a call carrying group id `g`: `EINVAL` for an invalid
    /// id, `ENOENT` without header, `EINVAL` for another group's header.
    fn loaded(&self, h: usize, g: usize) -> Result<&HeaderM, i32> {
        if !valid_id(GROUP_IDS[g]) {
            return Err(libc::EINVAL);
        }
        let header = self.header(h).ok_or(libc::ENOENT)?;
        header.check_id(GROUP_IDS[g])?;
        Ok(header)
    }

    fn loaded_active(&self, h: usize, g: usize) -> Result<&HeaderM, i32> {
        let header = self.loaded(h, g)?;
        header.check_active(GROUP_IDS[g])?;
        Ok(header)
    }

    /// The member key of image `i` on header `h`, for a member call with group id `g`.
    fn member(&self, h: usize, g: usize, i: usize) -> Result<MemberRecord, i32> {
        if !valid_id(GROUP_IDS[g]) {
            return Err(libc::EINVAL);
        }
        self.header(h).and_then(|hdr| hdr.members.get(&mkey(i)).cloned()).ok_or(libc::ENOENT)
    }

    /// Applies `op`, returning what the class must answer.
    pub(super) fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::DirAdd { n, g } => {
                let (name, id) = (NAMES[n], GROUP_IDS[g]);
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                if let Some(e) = self.dir.get(name) {
                    return if e.id == id && e.state == DirState::Creating { Ok(None) } else { Err(libc::EEXIST) };
                }
                if self.dir_ids.contains_key(id) {
                    return Err(libc::EEXIST);
                }
                self.dir.insert(name.into(), DirEntry { id: id.into(), state: DirState::Creating });
                self.dir_ids.insert(id.into(), name.into());
                Ok(None)
            }
            Op::DirSetReady { n, g } => {
                let (name, id) = (NAMES[n], GROUP_IDS[g]);
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                let e = self.dir.get_mut(name).filter(|e| e.id == id).ok_or(libc::ENOENT)?;
                match e.state {
                    DirState::Ready => Ok(None),
                    DirState::Creating => {
                        e.state = DirState::Ready;
                        Ok(None)
                    }
                    _ => Err(libc::EBUSY),
                }
            }
            Op::DirRenameBegin { g, n, n2 } => {
                let (id, old, new) = (GROUP_IDS[g], NAMES[n], NAMES[n2]);
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                if old == new {
                    return Err(libc::EEXIST);
                }
                let o = self.dir.get(old).filter(|e| e.id == id).ok_or(libc::ENOENT)?;
                let resumed = DirEntry { id: id.into(), state: DirState::RenamingFrom(old.into()) };
                match (&o.state, self.dir.get(new)) {
                    (DirState::RenamingTo(to), Some(e)) if to == new && *e == resumed => return Ok(None),
                    (DirState::Ready, None) => {}
                    (DirState::Ready, Some(_)) => return Err(libc::EEXIST),
                    _ => return Err(libc::EBUSY),
                }
                self.dir.insert(old.into(), DirEntry { id: id.into(), state: DirState::RenamingTo(new.into()) });
                self.dir.insert(new.into(), resumed);
                self.dir_ids.insert(id.into(), new.into());
                Ok(None)
            }
            Op::DirRenameFinish { g, n, n2 } => {
                let (id, old, new) = (GROUP_IDS[g], NAMES[n], NAMES[n2]);
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                let ne = self.dir.get(new).filter(|e| e.id == id).ok_or(libc::ENOENT)?;
                let old_is_ours =
                    self.dir.get(old).is_some_and(|o| o.id == id && o.state == DirState::RenamingTo(new.into()));
                match &ne.state {
                    DirState::Ready if !old_is_ours => return Ok(None),
                    DirState::RenamingFrom(from) if from == old => {}
                    _ => return Err(libc::EBUSY),
                }
                if old_is_ours {
                    self.dir.remove(old);
                }
                self.dir.insert(new.into(), DirEntry { id: id.into(), state: DirState::Ready });
                Ok(None)
            }
            Op::DirRemove { n, g } => {
                let (name, id) = (NAMES[n], GROUP_IDS[g]);
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                let e = self.dir.get(name).filter(|e| e.id == id).ok_or(libc::ENOENT)?;
                if !matches!(e.state, DirState::Creating | DirState::Ready) {
                    return Err(libc::EBUSY);
                }
                self.dir.remove(name);
                if self.dir_ids.get(id).is_some_and(|n| n == name) {
                    self.dir_ids.remove(id);
                }
                Ok(None)
            }
            Op::DirGet { n } => self.dir.get(NAMES[n]).map_or(Err(libc::ENOENT), reply),
            Op::DirList => {
                let entries = self
                    .dir
                    .iter()
                    .map(|(name, entry)| m::DirListItem { name: name.clone(), entry: entry.clone() })
                    .collect();
                reply(&m::DirListReply { entries, more: false })
            }
            Op::IdCreate { n, g } => {
                let id = GROUP_IDS[g];
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                match self.ids.get(NAMES[n]) {
                    Some(existing) if existing == id => Ok(None),
                    Some(_) => Err(libc::EEXIST),
                    None => {
                        self.ids.insert(NAMES[n].into(), id.into());
                        Ok(None)
                    }
                }
            }
            Op::IdRemove { n, g } => {
                let id = GROUP_IDS[g];
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                match self.ids.get(NAMES[n]) {
                    Some(existing) if existing == id => {
                        self.ids.remove(NAMES[n]);
                        Ok(None)
                    }
                    _ => Err(libc::ENOENT),
                }
            }
            Op::IdGet { n } => {
                self.ids.get(NAMES[n]).map_or(Err(libc::ENOENT), |id| reply(&GroupIdRecord { id: id.clone() }))
            }
            Op::GroupCreate { h, g, n } => {
                let (id, name) = (GROUP_IDS[g], NAMES[n]);
                if !valid_id(id) {
                    return Err(libc::EINVAL);
                }
                match self.header(h) {
                    Some(x) if x.header.id == id && x.header.name == name && x.header.state == HeaderState::Active => {
                        Ok(None)
                    }
                    Some(x) if x.header.id == id && x.header.state == HeaderState::Removing => Err(libc::EBUSY),
                    Some(_) => Err(libc::EEXIST),
                    None => {
                        let header = GroupHeader {
                            id: id.into(),
                            name: name.into(),
                            state: HeaderState::Active,
                            created_ms: 7,
                            member_count: 0,
                            snapshot_count: 0,
                            features: 0,
                        };
                        self.headers.insert(
                            HEADERS[h].into(),
                            HeaderM {
                                header,
                                members: BTreeMap::new(),
                                snaps: BTreeMap::new(),
                                snapnames: BTreeMap::new(),
                                next_seq: None,
                                in_progress: None,
                            },
                        );
                        Ok(None)
                    }
                }
            }
            Op::GroupSetName { h, g, n, n2 } => {
                let (old, new) = (NAMES[n], NAMES[n2]);
                let x = self.loaded(h, g)?;
                if x.header.name == new {
                    return Ok(None);
                }
                if x.header.name != old || x.header.state != HeaderState::Active {
                    return Err(libc::EBUSY);
                }
                self.header_mut(h).header.name = new.into();
                Ok(None)
            }
            Op::GroupBeginRemove { h, g } => {
                let x = self.loaded(h, g)?;
                if x.header.state == HeaderState::Removing {
                    return Ok(None);
                }
                if x.header.member_count > 0 || x.header.snapshot_count > 0 {
                    return Err(libc::EBUSY);
                }
                self.header_mut(h).header.state = HeaderState::Removing;
                Ok(None)
            }
            Op::GroupRemove { h, g } => {
                let x = self.loaded(h, g)?;
                if x.header.state != HeaderState::Removing {
                    return Err(libc::EBUSY);
                }
                self.headers.remove(HEADERS[h]);
                Ok(None)
            }
            Op::GroupGet { h } => self.header(h).map_or(Err(libc::ENOENT), |x| reply(&x.header)),
            Op::MemberAddBegin { h, g, i, limit } => {
                let max = LIMITS[limit];
                if max == 0 || max > 4096 {
                    return Err(libc::ERANGE);
                }
                let x = self.loaded_active(h, g)?;
                match x.members.get(&mkey(i)).map(|r| r.state) {
                    Some(MemberState::Adding) => return Ok(None),
                    Some(MemberState::Attached) => return Err(libc::EEXIST),
                    Some(MemberState::Removing) => return Err(libc::EBUSY),
                    None => {}
                }
                if x.in_progress.is_some() {
                    return Err(libc::EBUSY);
                }
                if x.header.member_count >= max {
                    return Err(libc::ERANGE);
                }
                let x = self.header_mut(h);
                x.header.member_count += 1;
                x.members.insert(mkey(i), MemberRecord { image: image(i), state: MemberState::Adding, added_ms: 9 });
                Ok(None)
            }
            Op::MemberAddFinish { h, g, i } => {
                let record = self.member(h, g, i)?;
                self.loaded_active(h, g)?;
                match record.state {
                    MemberState::Attached => Ok(None),
                    MemberState::Adding => {
                        self.header_mut(h).members.get_mut(&mkey(i)).expect("present").state = MemberState::Attached;
                        Ok(None)
                    }
                    MemberState::Removing => Err(libc::EBUSY),
                }
            }
            Op::MemberRemoveBegin { h, g, i } => {
                let record = self.member(h, g, i)?;
                if record.state == MemberState::Removing {
                    return Ok(None);
                }
                if self.header(h).is_some_and(|x| x.in_progress.is_some()) {
                    return Err(libc::EBUSY);
                }
                self.header_mut(h).members.get_mut(&mkey(i)).expect("present").state = MemberState::Removing;
                Ok(None)
            }
            Op::MemberRemoveFinish { h, g, i } => {
                let record = self.member(h, g, i)?;
                if record.state != MemberState::Removing {
                    return Err(libc::EBUSY);
                }
                self.loaded(h, g)?;
                let x = self.header_mut(h);
                x.members.remove(&mkey(i));
                x.header.member_count = x.header.member_count.saturating_sub(1);
                Ok(None)
            }
            Op::MemberList { h } => {
                let x = self.header(h).ok_or(libc::ENOENT)?;
                reply(&m::MemberListReply { members: x.members.values().cloned().collect(), more: false })
            }
            Op::Link { i, g } | Op::Unlink { i, g } => {
                if !valid_id(GROUP_IDS[g]) {
                    return Err(libc::EINVAL);
                }
                let refs = self.backrefs.get_mut(IMAGES[i]).ok_or(libc::ENOENT)?;
                let key = backref_key(POOL, GROUP_IDS[g], "");
                if matches!(op, Op::Link { .. }) {
                    refs.insert(key, group_ref(g));
                } else {
                    refs.remove(&key);
                }
                Ok(None)
            }
            Op::ImageGroups { i } => {
                let refs = self.backrefs.get(IMAGES[i]).ok_or(libc::ENOENT)?;
                reply(&m::GroupRefList { groups: refs.values().cloned().collect(), more: false })
            }
            Op::SnapCreateBegin { h, g, s, id, limit } => {
                let (name, snap_id, max) = (SNAP_NAMES[s], SNAP_IDS[id], LIMITS[limit]);
                if !valid_id(snap_id) {
                    return Err(libc::EINVAL);
                }
                if max == 0 || max > 4096 {
                    return Err(libc::ERANGE);
                }
                let x = self.loaded_active(h, g)?;
                if let Some(seq) = x.snapnames.get(name) {
                    let r = &x.snaps[seq];
                    return if r.id == snap_id && r.state == SnapshotState::Creating {
                        Ok(None)
                    } else {
                        Err(libc::EEXIST)
                    };
                }
                if x.in_progress.is_some() {
                    return Err(libc::EBUSY);
                }
                if x.header.snapshot_count >= max {
                    return Err(libc::ERANGE);
                }
                let members = x.attached()?.into_iter().map(|image| SnapshotMember { image, snap_id: None }).collect();
                let seq = x.next_seq.unwrap_or(1);
                let x = self.header_mut(h);
                x.snaps.insert(
                    seq,
                    SnapshotRecord {
                        seq,
                        id: snap_id.into(),
                        name: name.into(),
                        state: SnapshotState::Creating,
                        created_ms: 11,
                        members,
                    },
                );
                x.snapnames.insert(name.into(), seq);
                x.next_seq = Some(seq + 1);
                x.in_progress = Some(SnapInProgress { seq, operation: SnapOperation::Create });
                x.header.snapshot_count += 1;
                Ok(None)
            }
            Op::SnapCreateFinish { h, g, s, kind } => {
                let x = self.loaded(h, g)?;
                let seq = x.snap_seq(SNAP_NAMES[s])?;
                let record = &x.snaps[&seq];
                match record.state {
                    SnapshotState::Complete => return Ok(None),
                    SnapshotState::Removing => return Err(libc::EBUSY),
                    SnapshotState::Creating => {}
                }
                let pairs = finish_pairs(record, kind);
                let matches = pairs.len() == record.members.len()
                    && pairs.iter().zip(&record.members).all(|((image, _), m)| *image == m.image);
                if !matches {
                    return Err(libc::EINVAL);
                }
                let x = self.header_mut(h);
                let record = x.snaps.get_mut(&seq).expect("present");
                for (member, (_, id)) in record.members.iter_mut().zip(pairs) {
                    member.snap_id = Some(id);
                }
                record.state = SnapshotState::Complete;
                if x.in_progress.as_ref().is_some_and(|p| p.seq == seq) {
                    x.in_progress = None;
                }
                Ok(None)
            }
            Op::SnapRemoveBegin { h, g, s, undo } => {
                let x = self.loaded(h, g)?;
                let seq = x.snap_seq(SNAP_NAMES[s])?;
                match x.snaps[&seq].state {
                    SnapshotState::Removing => return Ok(None),
                    SnapshotState::Creating if !undo => return Err(libc::EBUSY),
                    _ => {}
                }
                if x.in_progress.as_ref().is_some_and(|p| p.seq == seq && p.operation == SnapOperation::Rollback) {
                    return Err(libc::EBUSY);
                }
                self.header_mut(h).snaps.get_mut(&seq).expect("present").state = SnapshotState::Removing;
                Ok(None)
            }
            Op::SnapRemoveFinish { h, g, s } => {
                let x = self.loaded(h, g)?;
                let seq = x.snap_seq(SNAP_NAMES[s])?;
                if x.snaps[&seq].state != SnapshotState::Removing {
                    return Err(libc::EBUSY);
                }
                let x = self.header_mut(h);
                x.snaps.remove(&seq);
                x.snapnames.remove(SNAP_NAMES[s]);
                if x.in_progress.as_ref().is_some_and(|p| p.seq == seq) {
                    x.in_progress = None;
                }
                x.header.snapshot_count = x.header.snapshot_count.saturating_sub(1);
                Ok(None)
            }
            Op::SnapRename { h, g, s, s2 } => {
                let (old, new) = (SNAP_NAMES[s], SNAP_NAMES[s2]);
                let x = self.loaded(h, g)?;
                let seq = x.snap_seq(old)?;
                if x.snaps[&seq].state != SnapshotState::Complete {
                    return Err(libc::EBUSY);
                }
                if x.snapnames.contains_key(new) {
                    return Err(libc::EEXIST);
                }
                let x = self.header_mut(h);
                x.snapnames.remove(old);
                x.snapnames.insert(new.into(), seq);
                x.snaps.get_mut(&seq).expect("present").name = new.into();
                Ok(None)
            }
            Op::SnapRollbackBegin { h, g, s } => {
                let x = self.loaded_active(h, g)?;
                let seq = x.snap_seq(SNAP_NAMES[s])?;
                if x.snaps[&seq].state != SnapshotState::Complete {
                    return Err(libc::EBUSY);
                }
                match &x.in_progress {
                    Some(p) if p.seq == seq && p.operation == SnapOperation::Rollback => return Ok(None),
                    Some(_) => return Err(libc::EBUSY),
                    None => {}
                }
                x.attached()?;
                self.header_mut(h).in_progress = Some(SnapInProgress { seq, operation: SnapOperation::Rollback });
                Ok(None)
            }
            Op::SnapRollbackFinish { h, g, s } => {
                let x = self.loaded(h, g)?;
                let seq = x.snap_seq(SNAP_NAMES[s])?;
                if x.in_progress.as_ref().is_some_and(|p| p.seq == seq && p.operation == SnapOperation::Rollback) {
                    self.header_mut(h).in_progress = None;
                }
                Ok(None)
            }
            Op::SnapGet { h, g, s } => {
                if self.header(h).is_none() {
                    return Err(libc::ENOENT); // from the OSD: a read method on no object
                }
                let x = self.loaded(h, g)?;
                let seq = x.snap_seq(SNAP_NAMES[s])?;
                reply(&x.snaps[&seq])
            }
            Op::SnapList { h } => {
                let x = self.header(h).ok_or(libc::ENOENT)?;
                reply(&m::SnapListReply {
                    snapshots: x.snaps.values().cloned().collect(),
                    in_progress: x.in_progress.clone(),
                    more: false,
                })
            }
        }
    }
}

fn mkey(i: usize) -> String {
    member_key(POOL, IMAGES[i], "")
}

/// The `(image, snap id)` pairs a finish of `kind` sends for `record`.
fn finish_pairs(record: &SnapshotRecord, kind: FinishKind) -> Vec<(ImageRef, u64)> {
    let mut pairs: Vec<(ImageRef, u64)> =
        record.members.iter().enumerate().map(|(k, m)| (m.image.clone(), 100 + k as u64)).collect();
    match kind {
        FinishKind::Exact => {}
        FinishKind::WrongCount if pairs.is_empty() => pairs.push((image(0), 100)),
        FinishKind::WrongCount => {
            pairs.pop();
        }
        FinishKind::Reversed => pairs.reverse(),
    }
    pairs
}

// ---- running calls on the real class -------------------------------------------------------

/// The world before any call: image headers exist (with a librbd key of their own) for
/// the images that have one; nothing else.
pub(super) fn world() -> (Harness, Model) {
    let mut harness = Harness::default();
    let mut model = Model::default();
    for name in IMAGES_WITH_HEADER {
        let mut object = MemObject::default();
        object.omap.insert("features".into(), vec![1, 0, 0, 0, 0, 0, 0, 0]);
        harness.put(&format!("rbd_header.{name}"), Some(object));
        model.backrefs.insert(name.into(), BTreeMap::new());
    }
    (harness, model)
}

/// Runs `name` on `oid` like the OSD: a read method on a missing object never reaches the
/// class (`ENOENT`).
pub(super) fn call_raw(h: &mut Harness, oid: &str, name: &str, input: &[u8]) -> Outcome {
    let entry = methods::find(name).expect("registered");
    if entry.access == m::Access::Read && h.object(oid).is_none() {
        return Err(libc::ENOENT);
    }
    match h.call_raw(oid, name, input) {
        Ok(bytes) if entry.access == m::Access::Read => Ok(Some(bytes)),
        Ok(bytes) => {
            assert!(bytes.is_empty(), "{name} is a write method: status only");
            Ok(None)
        }
        Err(e) => Err(errno(&e)),
    }
}

/// A call: object, method and encoded request.
pub(super) type Call = (String, &'static str, Vec<u8>);

fn req<Req: Versioned>(oid: &str, name: &'static str, req: &Req) -> Call {
    (oid.to_owned(), name, encode(req).expect("request encodes"))
}

/// Runs `op` on the real class. `model` is the state before the call (it supplies what a
/// client would know: the members of the snapshot being finished).
fn run(h: &mut Harness, model: &Model, op: &Op) -> Outcome {
    // An absent directory lists as empty (the client reads the OSD's ENOENT so).
    if matches!(op, Op::DirList) && h.object(DIRECTORY_OBJECT).is_none() {
        return reply(&m::DirListReply { entries: Vec::new(), more: false });
    }
    let (oid, name, input) = request(model, op);
    call_raw(h, &oid, name, &input)
}

/// The call `op` makes, given the state `model` before it.
pub(super) fn request(model: &Model, op: &Op) -> Call {
    let gid = |g: usize| GROUP_IDS[g].to_owned();
    let dir = DIRECTORY_OBJECT;
    match *op {
        Op::DirAdd { n, g } => req(dir, m::DIR_ADD.name, &NameAndId { name: NAMES[n].into(), id: gid(g) }),
        Op::DirSetReady { n, g } => req(dir, m::DIR_SET_READY.name, &NameAndId { name: NAMES[n].into(), id: gid(g) }),
        Op::DirRenameBegin { g, n, n2 } => req(
            dir,
            m::DIR_RENAME_BEGIN.name,
            &RenameRequest { id: gid(g), old_name: NAMES[n].into(), new_name: NAMES[n2].into() },
        ),
        Op::DirRenameFinish { g, n, n2 } => req(
            dir,
            m::DIR_RENAME_FINISH.name,
            &RenameRequest { id: gid(g), old_name: NAMES[n].into(), new_name: NAMES[n2].into() },
        ),
        Op::DirRemove { n, g } => req(dir, m::DIR_REMOVE.name, &NameAndId { name: NAMES[n].into(), id: gid(g) }),
        Op::DirGet { n } => req(dir, m::DIR_GET.name, &NameRequest { name: NAMES[n].into() }),
        Op::DirList => req(dir, m::DIR_LIST.name, &DirListRequest { start_after: String::new(), max_entries: 1024 }),
        Op::IdCreate { n, g } => req(&id_oid(n), m::ID_CREATE.name, &IdRequest { id: gid(g) }),
        Op::IdRemove { n, g } => req(&id_oid(n), m::ID_REMOVE.name, &IdRequest { id: gid(g) }),
        Op::IdGet { n } => req(&id_oid(n), m::ID_GET.name, &Empty {}),
        Op::GroupCreate { h: x, g, n } => req(
            &header_oid(x),
            m::GROUP_CREATE.name,
            &GroupCreateRequest { id: gid(g), name: NAMES[n].into(), created_ms: 7 },
        ),
        Op::GroupSetName { h: x, g, n, n2 } => req(
            &header_oid(x),
            m::GROUP_SET_NAME.name,
            &RenameRequest { id: gid(g), old_name: NAMES[n].into(), new_name: NAMES[n2].into() },
        ),
        Op::GroupBeginRemove { h: x, g } => req(&header_oid(x), m::GROUP_BEGIN_REMOVE.name, &IdRequest { id: gid(g) }),
        Op::GroupRemove { h: x, g } => req(&header_oid(x), m::GROUP_REMOVE.name, &IdRequest { id: gid(g) }),
        Op::GroupGet { h: x } => req(&header_oid(x), m::GROUP_GET.name, &Empty {}),
        Op::MemberAddBegin { h: x, g, i, limit } => req(
            &header_oid(x),
            m::MEMBER_ADD_BEGIN.name,
            &MemberAddRequest { group_id: gid(g), image: image(i), added_ms: 9, max_members: LIMITS[limit] },
        ),
        Op::MemberAddFinish { h: x, g, i } => {
            req(&header_oid(x), m::MEMBER_ADD_FINISH.name, &MemberRequest { group_id: gid(g), image: image(i) })
        }
        Op::MemberRemoveBegin { h: x, g, i } => {
            req(&header_oid(x), m::MEMBER_REMOVE_BEGIN.name, &MemberRequest { group_id: gid(g), image: image(i) })
        }
        Op::MemberRemoveFinish { h: x, g, i } => {
            req(&header_oid(x), m::MEMBER_REMOVE_FINISH.name, &MemberRequest { group_id: gid(g), image: image(i) })
        }
        Op::MemberList { h: x } => {
            req(&header_oid(x), m::MEMBER_LIST.name, &MemberListRequest { start_after: None, max_entries: 1024 })
        }
        Op::Link { i, g } => req(
            &image_oid(i),
            m::IMAGE_GROUP_LINK.name,
            &BackRefRequest { image_id: IMAGES[i].into(), group: group_ref(g) },
        ),
        Op::Unlink { i, g } => req(
            &image_oid(i),
            m::IMAGE_GROUP_UNLINK.name,
            &BackRefRequest { image_id: IMAGES[i].into(), group: group_ref(g) },
        ),
        Op::ImageGroups { i } => req(&image_oid(i), m::IMAGE_GROUP_LIST.name, &Empty {}),
        Op::SnapCreateBegin { h: x, g, s, id, limit } => req(
            &header_oid(x),
            m::SNAP_CREATE_BEGIN.name,
            &SnapCreateRequest {
                group_id: gid(g),
                snap_id: SNAP_IDS[id].into(),
                name: SNAP_NAMES[s].into(),
                created_ms: 11,
                max_snapshots: LIMITS[limit],
            },
        ),
        Op::SnapCreateFinish { h: x, g, s, kind } => {
            let record =
                model.header(x).and_then(|hdr| hdr.snapnames.get(SNAP_NAMES[s]).map(|seq| hdr.snaps[seq].clone()));
            let image_snaps = record.map(|r| finish_pairs(&r, kind)).unwrap_or_default();
            req(
                &header_oid(x),
                m::SNAP_CREATE_FINISH.name,
                &SnapFinishRequest { group_id: gid(g), name: SNAP_NAMES[s].into(), image_snaps },
            )
        }
        Op::SnapRemoveBegin { h: x, g, s, undo } => req(
            &header_oid(x),
            m::SNAP_REMOVE_BEGIN.name,
            &SnapRemoveRequest { group_id: gid(g), name: SNAP_NAMES[s].into(), undo_create: undo },
        ),
        Op::SnapRemoveFinish { h: x, g, s } => req(
            &header_oid(x),
            m::SNAP_REMOVE_FINISH.name,
            &SnapRequest { group_id: gid(g), name: SNAP_NAMES[s].into() },
        ),
        Op::SnapRename { h: x, g, s, s2 } => req(
            &header_oid(x),
            m::SNAP_RENAME.name,
            &SnapRenameRequest { group_id: gid(g), old_name: SNAP_NAMES[s].into(), new_name: SNAP_NAMES[s2].into() },
        ),
        Op::SnapRollbackBegin { h: x, g, s } => req(
            &header_oid(x),
            m::SNAP_ROLLBACK_BEGIN.name,
            &SnapRequest { group_id: gid(g), name: SNAP_NAMES[s].into() },
        ),
        Op::SnapRollbackFinish { h: x, g, s } => req(
            &header_oid(x),
            m::SNAP_ROLLBACK_FINISH.name,
            &SnapRequest { group_id: gid(g), name: SNAP_NAMES[s].into() },
        ),
        Op::SnapGet { h: x, g, s } => {
            req(&header_oid(x), m::SNAP_GET.name, &SnapRequest { group_id: gid(g), name: SNAP_NAMES[s].into() })
        }
        Op::SnapList { h: x } => {
            req(&header_oid(x), m::SNAP_LIST.name, &SnapListRequest { start_after_seq: 0, max_entries: 1024 })
        }
    }
}

// ---- reading the real state back -----------------------------------------------------------

fn dec<T: Versioned>(what: &str, bytes: &[u8]) -> T {
    decode(bytes).unwrap_or_else(|e| panic!("{what} does not decode: {e}"))
}

/// The stored objects, decoded into the model's shape. Any key or object the model does
/// not know fails the test.
fn observe(h: &Harness) -> Model {
    let mut model = Model::default();
    if let Some(dir) = h.object(DIRECTORY_OBJECT) {
        assert!(dir.data.is_empty(), "cg_directory has data");
        for (key, value) in &dir.omap {
            if let Some(name) = key.strip_prefix(DIR_NAME_KEY_PREFIX) {
                model.dir.insert(name.into(), dec(key, value));
            } else if let Some(id) = key.strip_prefix(DIR_ID_KEY_PREFIX) {
                let entry: DirIdEntry = dec(key, value);
                model.dir_ids.insert(id.into(), entry.name);
            } else {
                panic!("unknown directory key {key:?}");
            }
        }
    }
    for (n, name) in NAMES.iter().enumerate() {
        if let Some(object) = h.object(&id_oid(n)) {
            assert!(object.omap.is_empty(), "cg_id.{name} has omap");
            let record: GroupIdRecord = dec("cg_id", &object.data);
            model.ids.insert((*name).into(), record.id);
        }
    }
    for (x, name) in HEADERS.iter().enumerate() {
        let Some(object) = h.object(&header_oid(x)) else { continue };
        let header: GroupHeader = dec("header", &object.data);
        let mut hm = HeaderM {
            header,
            members: BTreeMap::new(),
            snaps: BTreeMap::new(),
            snapnames: BTreeMap::new(),
            next_seq: None,
            in_progress: None,
        };
        for (key, value) in &object.omap {
            if key.starts_with(MEMBER_KEY_PREFIX) {
                hm.members.insert(key.clone(), dec(key, value));
            } else if key.starts_with(SNAP_KEY_PREFIX) {
                let record: SnapshotRecord = dec(key, value);
                assert_eq!(*key, snap_key(record.seq), "record under the wrong key");
                hm.snaps.insert(record.seq, record);
            } else if let Some(snap) = key.strip_prefix(SNAP_NAME_KEY_PREFIX) {
                let entry: SnapNameEntry = dec(key, value);
                hm.snapnames.insert(snap.into(), entry.seq);
            } else if key == NEXT_SNAP_SEQ_KEY {
                let seq: SnapSeq = dec(key, value);
                hm.next_seq = Some(seq.next);
            } else if key == SNAPSHOT_IN_PROGRESS_KEY {
                hm.in_progress = Some(dec(key, value));
            } else {
                panic!("unknown key {key:?} on cg_header.{name}");
            }
        }
        model.headers.insert((*name).into(), hm);
    }
    for name in IMAGES_WITH_HEADER {
        let object = h.object(&format!("rbd_header.{name}")).expect("image headers are never removed");
        let refs = object
            .omap
            .iter()
            .filter(|(k, _)| k.starts_with(BACKREF_KEY_PREFIX))
            .map(|(k, v)| (k.clone(), dec::<GroupRef>(k, v)))
            .collect();
        model.backrefs.insert(name.into(), refs);
        assert_eq!(object.omap.get("features"), Some(&vec![1, 0, 0, 0, 0, 0, 0, 0]), "librbd's key was touched");
    }
    assert!(h.object(&format!("rbd_header.{}", IMAGES[2])).is_none(), "an image header was created");
    model
}

/// What holds after every call, whatever the sequence.
fn check_invariants(state: &Model) {
    for (name, hm) in &state.headers {
        assert_eq!(hm.header.member_count as usize, hm.members.len(), "member_count of {name}");
        assert_eq!(hm.header.snapshot_count as usize, hm.snaps.len(), "snapshot_count of {name}");
        for (snap, seq) in &hm.snapnames {
            let record = hm.snaps.get(seq).unwrap_or_else(|| panic!("snapname_{snap} names no record"));
            assert_eq!(&record.name, snap, "snapname_{snap} names a record called {}", record.name);
        }
        assert_eq!(hm.snapnames.len(), hm.snaps.len(), "every record of {name} has one name");
        if let Some(max) = hm.snaps.keys().max() {
            assert!(hm.next_seq.is_some_and(|next| next > *max), "next_snap_seq of {name} is not above {max}");
        }
        if let Some(p) = &hm.in_progress {
            assert!(hm.snaps.contains_key(&p.seq), "the in-progress mark of {name} names no snapshot");
        }
        for record in hm.snaps.values() {
            let complete = record.state == SnapshotState::Complete;
            if complete {
                assert!(record.members.iter().all(|m| m.snap_id.is_some()), "complete snapshot without ids");
            }
        }
    }
    for (id, name) in &state.dir_ids {
        let entry = state.dir.get(name).unwrap_or_else(|| panic!("id_{id} names {name}, not in the directory"));
        assert_eq!(&entry.id, id, "id_{id} and name_{name} disagree");
    }
}

/// Every object a call of these tests can reach.
pub(super) fn world_objects() -> Vec<String> {
    let mut objects = vec![DIRECTORY_OBJECT.to_owned()];
    objects.extend((0..NAMES.len()).map(id_oid));
    objects.extend((0..HEADERS.len()).map(header_oid));
    objects.extend((0..IMAGES.len()).map(image_oid));
    objects
}

/// A world where every kind of record exists: group `a` (g1, ready, two attached members
/// linked, a complete snapshot `s` and a renamed one `t`), group `b` (g2, being created,
/// a member being added and a snapshot being created).
pub(super) fn populated() -> (Harness, Model) {
    use Op::*;
    let ops = [
        DirAdd { n: 0, g: 0 },
        GroupCreate { h: 0, g: 0, n: 0 },
        IdCreate { n: 0, g: 0 },
        DirSetReady { n: 0, g: 0 },
        MemberAddBegin { h: 0, g: 0, i: 0, limit: 2 },
        Link { i: 0, g: 0 },
        MemberAddFinish { h: 0, g: 0, i: 0 },
        MemberAddBegin { h: 0, g: 0, i: 1, limit: 2 },
        Link { i: 1, g: 0 },
        MemberAddFinish { h: 0, g: 0, i: 1 },
        SnapCreateBegin { h: 0, g: 0, s: 0, id: 0, limit: 2 },
        SnapCreateFinish { h: 0, g: 0, s: 0, kind: FinishKind::Exact },
        SnapCreateBegin { h: 0, g: 0, s: 2, id: 1, limit: 2 },
        SnapCreateFinish { h: 0, g: 0, s: 2, kind: FinishKind::Exact },
        SnapRename { h: 0, g: 0, s: 2, s2: 1 },
        DirAdd { n: 1, g: 1 },
        GroupCreate { h: 1, g: 1, n: 1 },
        MemberAddBegin { h: 1, g: 1, i: 0, limit: 2 },
        MemberAddFinish { h: 1, g: 1, i: 0 },
        Link { i: 0, g: 1 },
        SnapCreateBegin { h: 1, g: 1, s: 0, id: 0, limit: 2 },
    ];
    let (mut harness, mut model) = world();
    for op in &ops {
        let before = model.clone();
        let expected = model.apply(op);
        assert_eq!(run(&mut harness, &before, op), expected, "{op:?}");
        assert!(expected.is_ok(), "{op:?}: {expected:?}");
    }
    assert_eq!(observe(&harness), model);
    (harness, model)
}

/// Cases per property: `default`, or `PROPTEST_CASES` for a longer hunt
/// (`PROPTEST_CASES=20000 cargo test -p cls_rbd_cg --lib model_tests`).
pub(super) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the sequence, comparing after every call; panics with the step on a difference.
fn check_sequence(ops: &[Op]) {
    let (mut harness, mut model) = world();
    for (step, op) in ops.iter().enumerate() {
        let before = model.clone();
        let expected = model.apply(op);
        let actual = run(&mut harness, &before, op);
        assert_eq!(actual, expected, "step {step}: {op:?}\nmodel before: {before:#?}");
        if actual.is_err() {
            assert_eq!(model, before, "step {step}: the model changed on an error");
        }
        let observed = observe(&harness);
        assert_eq!(observed, model, "step {step}: {op:?} left different state");
        check_invariants(&observed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_call_sequences_match_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        check_sequence(&ops);
    }
}

// ---- sequences that once failed (shrunk by proptest), and the paths that matter most -------

/// The life of one group through the client's own sequences: create, add two members,
/// snapshot, rename the snapshot, roll back, remove it, remove the members, remove the
/// group. A smoke test of the model itself.
#[test]
fn a_whole_group_life_matches_the_model() {
    use Op::*;
    check_sequence(&[
        DirAdd { n: 0, g: 0 },
        GroupCreate { h: 0, g: 0, n: 0 },
        IdCreate { n: 0, g: 0 },
        DirSetReady { n: 0, g: 0 },
        MemberAddBegin { h: 0, g: 0, i: 0, limit: 2 },
        Link { i: 0, g: 0 },
        MemberAddFinish { h: 0, g: 0, i: 0 },
        MemberAddBegin { h: 0, g: 0, i: 1, limit: 2 },
        MemberAddBegin { h: 0, g: 0, i: 2, limit: 2 },
        Link { i: 1, g: 0 },
        MemberAddFinish { h: 0, g: 0, i: 1 },
        SnapCreateBegin { h: 0, g: 0, s: 0, id: 0, limit: 2 },
        MemberAddBegin { h: 0, g: 0, i: 2, limit: 3 },
        SnapCreateFinish { h: 0, g: 0, s: 0, kind: FinishKind::Reversed },
        SnapCreateFinish { h: 0, g: 0, s: 0, kind: FinishKind::Exact },
        SnapRename { h: 0, g: 0, s: 0, s2: 1 },
        SnapRollbackBegin { h: 0, g: 0, s: 1 },
        SnapRemoveBegin { h: 0, g: 0, s: 1, undo: false },
        SnapRollbackFinish { h: 0, g: 0, s: 1 },
        SnapRemoveBegin { h: 0, g: 0, s: 1, undo: false },
        SnapRemoveFinish { h: 0, g: 0, s: 1 },
        SnapList { h: 0 },
        MemberRemoveBegin { h: 0, g: 0, i: 0 },
        Unlink { i: 0, g: 0 },
        MemberRemoveFinish { h: 0, g: 0, i: 0 },
        MemberRemoveBegin { h: 0, g: 0, i: 1 },
        MemberRemoveFinish { h: 0, g: 0, i: 1 },
        Unlink { i: 1, g: 0 },
        GroupBeginRemove { h: 0, g: 0 },
        IdRemove { n: 0, g: 0 },
        GroupRemove { h: 0, g: 0 },
        DirRemove { n: 0, g: 0 },
        DirList,
    ]);
}

/// The #14 race, as calls: a `snap rm` (no undo) of a snapshot another client is still
/// creating is refused, so the creator completes it; only the creator's undo may remove it.
#[test]
fn a_creating_snapshot_is_removed_only_by_an_undo() {
    use Op::*;
    check_sequence(&[
        GroupCreate { h: 0, g: 0, n: 0 },
        MemberAddBegin { h: 0, g: 0, i: 0, limit: 1 },
        MemberAddFinish { h: 0, g: 0, i: 0 },
        SnapCreateBegin { h: 0, g: 0, s: 0, id: 0, limit: 1 },
        SnapRemoveBegin { h: 0, g: 0, s: 0, undo: false },
        SnapCreateFinish { h: 0, g: 0, s: 0, kind: FinishKind::Exact },
        SnapCreateBegin { h: 0, g: 0, s: 1, id: 1, limit: 2 },
        SnapRemoveBegin { h: 0, g: 0, s: 1, undo: true },
        MemberRemoveBegin { h: 0, g: 0, i: 0 },
        SnapRemoveFinish { h: 0, g: 0, s: 1 },
        MemberRemoveBegin { h: 0, g: 0, i: 0 },
    ]);
}
