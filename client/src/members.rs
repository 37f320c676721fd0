//! Group members: `image add`, `image rm`, `image ls`, and their repair.
//!
//! Images are identified by pool id + namespace + image id, which survive `rbd rename`;
//! names are resolved only for display. Each membership change is a sequence of atomic
//! steps (see `docs/OPERATIONS.md`):
//!
//! add: 1. `member_add_begin` on `cg_header.<group id>` (member `Adding`)
//!      2. `image_group_link` on the image's `rbd_header.<image id>` (back-reference)
//!      3. `member_add_finish` on `cg_header.<group id>` (member `Attached`)
//!
//! remove: 1. `member_remove_begin` (member `Removing`)
//!         2. `image_group_unlink` (an image deleted behind our back is fine)
//!         3. `member_remove_finish` (member gone)
//!
//! Stock librbd does not know our groups, so a member can be deleted with `rbd rm` while
//! it belongs to one: `image ls` then shows it as missing, and `image rm --image-id` or
//! `repair` drops it.

use crate::error::{ignore_missing, Error, Result};
use crate::faults::Steps;
use crate::groups::Groups;
use crate::spec::{ImageSpec, PoolSpec};
use rbd_cg_contract::methods::{
    BackRefRequest, Empty, MemberAddRequest, MemberRequest, IMAGE_GROUP_LINK, IMAGE_GROUP_LIST, IMAGE_GROUP_UNLINK,
    MEMBER_ADD_BEGIN, MEMBER_ADD_FINISH, MEMBER_REMOVE_BEGIN, MEMBER_REMOVE_FINISH,
};
use rbd_cg_contract::names::{header_object, MAX_GROUP_MEMBERS};
use rbd_cg_contract::records::{ImageRef, MemberState};
use rbd_cg_rados::ceph::objects;
use rbd_cg_rados::image::{rbd_list, Image};
use rbd_cg_rados::IoCtx;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// A member as `image ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The image's identity.
    pub image: ImageRef,
    /// Pool name (or the id as text if the pool is gone).
    pub pool: String,
    /// Image name, `None` when the image no longer exists.
    pub name: Option<String>,
    /// `attached`, `adding`, `removing` (interrupted), or `missing` (image deleted).
    pub state: &'static str,
}

/// Membership changes are refused while a group snapshot is being created or rolled back,
/// while the image is mid-removal, and while the group is journaled; the class can only say
/// `EBUSY`, so say which here.
fn explain_busy(groups: &Groups, group_id: &str, e: impl Into<Error>) -> Error {
    let e = e.into();
    if e.errno() != libc::EBUSY {
        return e;
    }
    if let Ok(Some(journal)) = groups.journal(group_id) {
        let writer = journal.journal.writer.map_or_else(String::new, |w| {
            format!(" (its writer: {}, client {} at {}, epoch {})", w.description, w.client, w.addr, w.epoch)
        });
        return e.with_hint(format!(
            "The group is journaled{writer}: its members are fixed while journaling is enabled. Stop the \
             writer (`rbd-cg nbd serve`) and run `rbd-cg journal disable GROUP_SPEC` first."
        ));
    }
    e.with_hint(
        "A group snapshot or rollback is in progress (or this image is being removed). Wait for it; \
         if nothing is running, an interrupted command left it: run `rbd-cg repair GROUP_SPEC`.",
    )
}

impl Groups {
    fn pool_ioctx(&self, pool_id: i64, namespace: &str) -> Result<IoCtx> {
        Ok(self.cluster.ioctx_in(pool_id, namespace)?)
    }

    /// Opens `spec` and returns its identity; format-1 images are refused.
    pub fn resolve_image(&self, spec: &ImageSpec) -> Result<ImageRef> {
        let context = || format!("image {spec}");
        let mut ioctx = self.cluster.ioctx(&spec.location.pool).map_err(|e| Error::from(e).context(context()))?;
        ioctx.set_namespace(&spec.location.namespace)?;
        let image = Image::open_read_only(&ioctx, &spec.name).map_err(|e| Error::from(e).context(context()))?;
        if image.old_format()? {
            return Err(Error::new(format!("{}: format 1 images cannot join a group", context()), libc::EINVAL)
                .with_hint("Migrate it to format 2 (`rbd migration prepare`) first."));
        }
        Ok(ImageRef { pool_id: ioctx.pool_id(), namespace: spec.location.namespace.clone(), image_id: image.id()? })
    }

    /// Adds the image `spec` to group `group`, allowing at most `max_members` members.
    pub fn add_image(&self, group: &str, spec: &ImageSpec, max_members: u32) -> Result<()> {
        let group_id = self.ready_group_id(group, "adding an image to")?;
        let image = self.resolve_image(spec)?;
        self.add_steps(&group_id, &image, max_members)
            .map_err(|e| e.context(format!("adding image {spec} to group {}", self.spec(group))))
    }

    pub(crate) fn add_steps(&self, group_id: &str, image: &ImageRef, max_members: u32) -> Result<()> {
        let header = header_object(group_id);
        let member = MemberRequest { group_id: group_id.into(), image: image.clone() };
        let mut steps = Steps::new("image-add", &self.faults);
        steps.run("record the member as adding", || {
            let added_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            let request = MemberAddRequest { group_id: group_id.into(), image: image.clone(), added_ms, max_members };
            self.ioctx.call_write(&header, &MEMBER_ADD_BEGIN, &request).map_err(|e| explain_busy(self, group_id, e))
        })?;
        let linked = steps.run("link the image to the group", || {
            let request = BackRefRequest { image_id: image.image_id.clone(), group: self.group_ref(group_id) };
            let ioctx = self.pool_ioctx(image.pool_id, &image.namespace)?;
            Ok::<_, Error>(ioctx.call_write(&objects::image_header(&image.image_id), &IMAGE_GROUP_LINK, &request)?)
        });
        if let Err(e) = linked {
            if e.is_not_found() {
                // The image vanished after we resolved it: undo the half-made membership.
                self.image_remove_steps(group_id, image)?;
            }
            return Err(e);
        }
        steps.run("mark the member attached", || {
            match self.ioctx.call_write(&header, &MEMBER_ADD_FINISH, &member) {
                // A concurrent `image rm` of the same image won: it may have unlinked before
                // we linked, so unlink here too rather than leave a dangling back-reference.
                Err(e) if matches!(e.errno, libc::ENOENT | libc::EBUSY) => {
                    let request = BackRefRequest { image_id: image.image_id.clone(), group: self.group_ref(group_id) };
                    if let Ok(ioctx) = self.pool_ioctx(image.pool_id, &image.namespace) {
                        let header = objects::image_header(&image.image_id);
                        ignore_missing(ioctx.call_write(&header, &IMAGE_GROUP_UNLINK, &request))?;
                    }
                    Err(e.into())
                }
                other => other.map_err(Error::from),
            }
        })
    }

    /// Removes an image from group `group`, by spec or (for deleted images) by id.
    pub fn remove_image(&self, group: &str, image: &ImageRef) -> Result<()> {
        let group_id = self.ready_group_id(group, "removing an image from")?;
        self.image_remove_steps(&group_id, image)
            .map_err(|e| e.context(format!("removing image {} from group {}", image.image_id, self.spec(group))))
    }

    pub(crate) fn image_remove_steps(&self, group_id: &str, image: &ImageRef) -> Result<()> {
        let header = header_object(group_id);
        let member = MemberRequest { group_id: group_id.into(), image: image.clone() };
        let mut steps = Steps::new("image-remove", &self.faults);
        steps.run("record the member as removing", || {
            self.ioctx.call_write(&header, &MEMBER_REMOVE_BEGIN, &member).map_err(|e| explain_busy(self, group_id, e))
        })?;
        steps.run("unlink the image from the group", || {
            let request = BackRefRequest { image_id: image.image_id.clone(), group: self.group_ref(group_id) };
            match self.pool_ioctx(image.pool_id, &image.namespace) {
                Ok(ioctx) => ignore_missing(ioctx.call_write(
                    &objects::image_header(&image.image_id),
                    &IMAGE_GROUP_UNLINK,
                    &request,
                )),
                Err(e) if e.is_not_found() => Ok(()), // the pool itself is gone
                Err(e) => Err(e),
            }
        })?;
        steps.run("drop the member", || ignore_missing(self.ioctx.call_write(&header, &MEMBER_REMOVE_FINISH, &member)))
    }

    /// The members of group `group`, with names resolved (one `rbd ls` per pool/namespace).
    pub fn list_images(&self, group: &str) -> Result<Vec<MemberInfo>> {
        let context = || format!("listing images of group {}", self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let records = self.member_records(&entry.id).map_err(|e| e.context(context()))?;
        let mut names: HashMap<(i64, String), (String, HashMap<String, String>)> = HashMap::new();
        let mut members = Vec::with_capacity(records.len());
        for record in records {
            let location = (record.image.pool_id, record.image.namespace.clone());
            if !names.contains_key(&location) {
                let listing = match self.pool_ioctx(record.image.pool_id, &record.image.namespace) {
                    Ok(ioctx) => {
                        let ids = rbd_list(&ioctx)?.into_iter().map(|(name, id)| (id, name)).collect();
                        (ioctx.pool_name()?, ids)
                    }
                    Err(e) if e.is_not_found() => (record.image.pool_id.to_string(), HashMap::new()),
                    Err(e) => return Err(e.context(context())),
                };
                names.insert(location.clone(), listing);
            }
            let (pool, ids) = &names[&location];
            let name = ids.get(&record.image.image_id).cloned();
            let state = match (record.state, &name) {
                (MemberState::Adding, _) => "adding",
                (MemberState::Removing, _) => "removing",
                (MemberState::Attached, None) => "missing",
                (MemberState::Attached, Some(_)) => "attached",
            };
            members.push(MemberInfo { image: record.image, pool: pool.clone(), name, state });
        }
        Ok(members)
    }

    /// Removes every member of group `group_id` (used by `rm --force`).
    pub(crate) fn remove_all_images(&self, group_id: &str) -> Result<()> {
        let records = self.member_records(group_id)?;
        let counter = self.progress.start("Removing images from the group", records.len() as u64);
        for record in records {
            self.image_remove_steps(group_id, &record.image)?;
            counter.tick();
        }
        Ok(())
    }

    /// Finishes interrupted membership changes of group `group_id`: an `Adding` member
    /// whose image still exists is attached, one whose image is gone is dropped; a
    /// `Removing` member is dropped. Returns one line per member it found.
    pub(crate) fn repair_members(&self, group_id: &str, check_only: bool) -> Result<Vec<String>> {
        let mut findings = self.repair_dangling_backrefs(group_id, check_only)?;
        for record in self.member_records(group_id)? {
            let image = &record.image;
            match record.state {
                MemberState::Attached => {
                    let ioctx = match self.pool_ioctx(image.pool_id, &image.namespace) {
                        Ok(ioctx) => ioctx,
                        Err(e) if e.is_not_found() => continue,
                        Err(e) => return Err(e),
                    };
                    let header = objects::image_header(&image.image_id);
                    let linked = match ioctx.call(&header, &IMAGE_GROUP_LIST, &Empty {}) {
                        Ok(list) => list.groups.contains(&self.group_ref(group_id)),
                        Err(e) if e.is_not_found() => true, // image deleted: `image ls` shows it missing
                        Err(e) => return Err(e.into()),
                    };
                    if !linked {
                        findings.push(format!("image {} lost its back-reference: restoring it", image.image_id));
                        if !check_only {
                            let request =
                                BackRefRequest { image_id: image.image_id.clone(), group: self.group_ref(group_id) };
                            ioctx.call_write(&header, &IMAGE_GROUP_LINK, &request)?;
                        }
                    }
                }
                MemberState::Adding => {
                    // Only ENOENT means gone; any other error stops the repair.
                    let exists = match self.pool_ioctx(image.pool_id, &image.namespace) {
                        Ok(io) => io.stat(&objects::image_header(&image.image_id))?.is_some(),
                        Err(e) if e.is_not_found() => false,
                        Err(e) => return Err(e),
                    };
                    if exists {
                        findings.push(format!("adding image {} was interrupted: completing it", image.image_id));
                        if !check_only {
                            self.add_steps(group_id, image, MAX_GROUP_MEMBERS)?;
                        }
                    } else {
                        findings.push(format!(
                            "adding image {} was interrupted and it is gone: dropping it",
                            image.image_id
                        ));
                        if !check_only {
                            self.image_remove_steps(group_id, image)?;
                        }
                    }
                }
                MemberState::Removing => {
                    findings.push(format!("removing image {} was interrupted: completing it", image.image_id));
                    if !check_only {
                        self.image_remove_steps(group_id, image)?;
                    }
                }
            }
        }
        Ok(findings)
    }
}

impl Groups {
    /// Back-references to this group on images that are not members. Our own sequences
    /// never leave one (an image is linked only after its member record exists and the
    /// record is dropped only after unlinking), but a tampered or partly deleted group
    /// can. Scans every image in the group's pool/namespace and in its members' ones.
    fn repair_dangling_backrefs(&self, group_id: &str, check_only: bool) -> Result<Vec<String>> {
        let members: std::collections::BTreeSet<ImageRef> =
            self.member_records(group_id)?.into_iter().map(|m| m.image).collect();
        let mut locations: std::collections::BTreeSet<(i64, String)> =
            members.iter().map(|m| (m.pool_id, m.namespace.clone())).collect();
        locations.insert((self.ioctx.pool_id(), self.location.namespace.clone()));
        let ours = self.group_ref(group_id);
        let mut findings = Vec::new();
        for (pool_id, namespace) in locations {
            let ioctx = match self.pool_ioctx(pool_id, &namespace) {
                Ok(ioctx) => ioctx,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for (name, image_id) in rbd_list(&ioctx)? {
                let image = ImageRef { pool_id, namespace: namespace.clone(), image_id: image_id.clone() };
                if members.contains(&image) {
                    continue;
                }
                let header = objects::image_header(&image_id);
                let linked = match ioctx.call(&header, &IMAGE_GROUP_LIST, &Empty {}) {
                    Ok(list) => list.groups.contains(&ours),
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e.into()),
                };
                // Re-read the members: an `image add` may have begun since the first read.
                if linked && !self.member_records(group_id)?.iter().any(|m| m.image == image) {
                    findings.push(format!(
                        "image {name} ({image_id}) points at this group but is not a member: unlinking it"
                    ));
                    if !check_only {
                        let request = BackRefRequest { image_id, group: ours.clone() };
                        ignore_missing(ioctx.call_write(&header, &IMAGE_GROUP_UNLINK, &request))?;
                    }
                }
            }
        }
        Ok(findings)
    }
}

/// An image given by id (for `image rm --image-id`): pool and namespace from `location`.
pub fn image_by_id(groups: &Groups, location: &PoolSpec, image_id: &str) -> Result<ImageRef> {
    let pool_id = groups.cluster.pool_lookup(&location.pool)?;
    Ok(ImageRef { pool_id, namespace: location.namespace.clone(), image_id: image_id.into() })
}
