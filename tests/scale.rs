//! Scale on the real cluster: a group of 1,000 members and a group with 1,000 snapshots
//! stay correct through create, `image ls`, `info`, `snap create`, `snap ls`, `snap info`
//! and `repair`. Listing is paged by the class (at most `MAX_LIST_PAGE` entries and
//! `MAX_SNAP_PAGE_BYTES` per call) and read page by page by the client. How the times
//! grow is measured by `scripts/bench.sh --scale`, not here.

mod common;

use common::*;
use rbd_cg_client::parallel;
use rbd_cg_client::snapshots::SnapCreateOptions;
use rbd_cg_client::spec::ImageSpec;
use rbd_cg_rados::image::{image_create, CREATE_FEATURES};

fn json(args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    serde_json::from_str(&rbd_cg_ok(&args)).unwrap()
}

#[test]
fn a_group_of_1000_members() {
    const MEMBERS: usize = 1000;
    let cluster = cluster();
    let ns = namespace("scale-members");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let names: Vec<String> = (0..MEMBERS).map(|i| format!("m{i:04}")).collect();
    let created = parallel::map(&names, 8, |_, name| {
        image_create(&ioctx(&cluster, "rbd", &ns), name, 4 << 20, Some(CREATE_FEATURES))
    });
    assert!(created.iter().all(Result::is_ok), "creating {MEMBERS} images");
    groups(&cluster, "rbd", &ns).create("big").unwrap();
    // Eight clients adding at once (each its own `Groups`: an I/O context is per thread).
    let added = parallel::map(&names, 8, |_, name| {
        groups(&cluster, "rbd", &ns).add_image("big", &ImageSpec::parse(&format!("rbd/{ns}/{name}")).unwrap(), 4096)
    });
    assert!(added.iter().all(Result::is_ok), "adding {MEMBERS} members: {:?}", added.iter().find(|r| r.is_err()));
    let group = format!("rbd/{ns}/big");

    let listed = json(&["image", "ls", &group]);
    assert_eq!(listed.as_array().unwrap().len(), MEMBERS);
    assert_eq!(json(&["info", &group])["image_count"], MEMBERS);
    rbd_cg_ok(&["snap", "create", &format!("{group}@all")]);
    let info = json(&["snap", "info", &format!("{group}@all")]);
    assert_eq!(info["status"], "complete");
    let images = info["images"].as_array().unwrap();
    assert_eq!(images.len(), MEMBERS);
    assert!(images.iter().all(|i| i["present"] == true && i["snap_id"].is_u64()));
    let check = rbd_cg(&["repair", "--check", &group]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
    // Every member image holds exactly the one member snapshot, as stock rbd sees it.
    let snaps = ceph_tool_ok("rbd", &["snap", "ls", "--all", "--format", "json", &format!("rbd/{ns}/m0999")]);
    assert_eq!(snaps.matches(".rbd_cg.").count(), 1, "{snaps}");
    rbd_cg_ok(&["rm", "--force", "--no-progress", &group]);
    assert!(rbd_cg_ok(&["ls", &format!("rbd/{ns}")]).trim().is_empty());
}

#[test]
fn a_group_with_1000_snapshots() {
    const SNAPSHOTS: usize = 1000;
    let cluster = cluster();
    let ns = namespace("scale-snaps");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/only")]);
    let groups = groups(&cluster, "rbd", &ns);
    groups.create("many").unwrap();
    groups.add_image("many", &ImageSpec::parse(&format!("rbd/{ns}/only")).unwrap(), 16).unwrap();
    let options = SnapCreateOptions { skip_quiesce: true, max_snapshots: 4096, ..Default::default() };
    for i in 0..SNAPSHOTS {
        groups.snap_create("many", &format!("s{i:04}"), &options).unwrap();
    }
    let group = format!("rbd/{ns}/many");
    let listed = json(&["snap", "ls", &group]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), SNAPSHOTS);
    assert!(listed.iter().all(|s| s["status"] == "complete"));
    let seqs: Vec<u64> = listed.iter().map(|s| s["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "creation order across pages");
    assert_eq!(json(&["info", &group])["snapshot_count"], SNAPSHOTS);
    assert_eq!(json(&["snap", "info", &format!("{group}@s0500")])["images"][0]["present"], true);
    let check = rbd_cg(&["repair", "--check", &group]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
    rbd_cg_ok(&["snap", "rm", &format!("{group}@s0000")]);
    assert_eq!(json(&["info", &group])["snapshot_count"], SNAPSHOTS - 1);
    let image_snaps = ceph_tool_ok("rbd", &["snap", "ls", "--all", "--format", "json", &format!("rbd/{ns}/only")]);
    assert_eq!(image_snaps.matches(".rbd_cg.").count(), SNAPSHOTS - 1);
}
