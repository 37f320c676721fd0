//! Group members on the real cluster: images made with the stock `rbd` tool, added and
//! removed through `rbd-cg`, back-references checked with `rados`, images deleted behind
//! our back, and a crash after every step of `image add` and `image rm`.

mod common;

use common::*;

/// A pool/namespace with an RBD namespace and `images` created in it.
fn setup(pool: &str, test: &str, images: &[&str]) -> String {
    let ns = namespace(test);
    ceph_tool_ok("rbd", &["namespace", "create", &format!("{pool}/{ns}")]);
    for image in images {
        ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("{pool}/{ns}/{image}")]);
    }
    ns
}

fn image_id(spec: &str) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&ceph_tool_ok("rbd", &["info", spec, "--format", "json"])).unwrap();
    info["id"].as_str().unwrap().to_owned()
}

fn backrefs(pool: &str, ns: &str, image_id: &str) -> Vec<String> {
    omap_keys(pool, ns, &format!("rbd_header.{image_id}")).into_iter().filter(|k| k.starts_with("rbd_cg.")).collect()
}

fn image_ls(group: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&rbd_cg_ok(&["image", "ls", group, "--format", "json"])).unwrap()
}

#[test]
fn members_lifecycle_with_back_references() {
    let ns = setup("rbd", "members", &["a", "b", "c"]);
    let group = format!("rbd/{ns}/g");
    let other = format!("rbd/{ns}/other");
    rbd_cg_ok(&["create", &group]);
    rbd_cg_ok(&["create", &other]);
    let (a, b) = (format!("rbd/{ns}/a"), format!("rbd/{ns}/b"));
    rbd_cg_ok(&["image", "add", &group, &a]);
    rbd_cg_ok(&["image", "add", &group, &b]);
    // Adding a member again is fine, as with `rbd group image add`; nothing changes.
    rbd_cg_ok(&["image", "add", &group, &a]);
    assert_eq!(image_ls(&group).len(), 2);
    expect_errno(&rbd_cg(&["image", "add", &group, &format!("rbd/{ns}/nope")]), libc::ENOENT);
    expect_errno(&rbd_cg(&["image", "add", &format!("rbd/{ns}/nogroup"), &a]), libc::ENOENT);
    // The same image may belong to several groups.
    rbd_cg_ok(&["image", "add", &other, &a]);

    let listed = image_ls(&group);
    assert_eq!(listed.len(), 2);
    let a_id = image_id(&a);
    let entry = listed.iter().find(|m| m["image"] == "a").unwrap();
    assert_eq!(
        (entry["id"].as_str(), entry["pool"].as_str(), entry["status"].as_str(), entry["state"].as_i64()),
        (Some(a_id.as_str()), Some("rbd"), Some("attached"), Some(0))
    );
    assert_eq!(entry["namespace"], ns.as_str());
    assert_eq!(backrefs("rbd", &ns, &a_id).len(), 2, "a knows both its groups");
    let plain = rbd_cg_ok(&["image", "ls", &group]);
    // Stock's plain form: `pool/[namespace/]image <state>`, the state empty when attached.
    assert_eq!(plain, format!("rbd/{ns}/a \nrbd/{ns}/b \n"));

    let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&["info", &group, "--format", "json"])).unwrap();
    assert_eq!(info["image_count"], 2);
    expect_errno(&rbd_cg(&["rm", "--only-if-empty", &group]), libc::EBUSY);

    rbd_cg_ok(&["image", "rm", &group, &a]);
    // Removing an image that is not a member is fine, as with `rbd group image rm`.
    rbd_cg_ok(&["image", "rm", &group, &a]);
    expect_errno(&rbd_cg(&["image", "rm", &group, &format!("rbd/{ns}/nope")]), libc::ENOENT);
    expect_errno(&rbd_cg(&["image", "rm", &format!("rbd/{ns}/nogroup"), &a]), libc::ENOENT);
    assert_eq!(backrefs("rbd", &ns, &a_id).len(), 1, "only the other group is left on a");
    // `rm` removes the members first.
    rbd_cg_ok(&["rm", &group]);
    assert!(backrefs("rbd", &ns, &image_id(&b)).is_empty());
    rbd_cg_ok(&["image", "rm", &other, &a]);
    assert!(backrefs("rbd", &ns, &a_id).is_empty());
    assert_eq!(assert_consistent(&cluster(), "rbd", &ns), ["other"]);
}

#[test]
fn members_in_another_pool_and_renamed_images() {
    ensure_pool("cgtest2");
    let group_ns = setup("rbd", "xpool-group", &[]);
    let image_ns = setup("cgtest2", "xpool-images", &["x"]);
    let group = format!("rbd/{group_ns}/g");
    rbd_cg_ok(&["create", &group]);
    rbd_cg_ok(&["image", "add", &group, &format!("cgtest2/{image_ns}/x")]);
    ceph_tool_ok("rbd", &["rename", &format!("cgtest2/{image_ns}/x"), &format!("cgtest2/{image_ns}/y")]);
    let listed = image_ls(&group);
    assert_eq!((listed[0]["image"].as_str(), listed[0]["pool"].as_str()), (Some("y"), Some("cgtest2")));
    assert_eq!(listed[0]["status"], "attached", "identity survives rbd rename");
    rbd_cg_ok(&["image", "rm", &group, &format!("cgtest2/{image_ns}/y")]);
    assert!(image_ls(&group).is_empty());
}

#[test]
fn an_image_deleted_behind_our_back_shows_as_missing_and_can_be_removed_by_id() {
    let ns = setup("rbd", "deleted", &["doomed"]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    let doomed = format!("rbd/{ns}/doomed");
    let id = image_id(&doomed);
    rbd_cg_ok(&["image", "add", &group, &doomed]);
    ceph_tool_ok("rbd", &["rm", "--no-progress", &doomed]);
    let listed = image_ls(&group);
    assert_eq!((listed[0]["status"].as_str(), listed[0]["image"].is_null()), (Some("missing"), true));
    assert_eq!(listed[0]["id"], id.as_str());
    expect_errno(&rbd_cg(&["image", "rm", &group, &doomed]), libc::ENOENT);
    rbd_cg_ok(&["image", "rm", &group, "--image-id", &id]);
    assert!(image_ls(&group).is_empty());
    rbd_cg_ok(&["rm", &group]);
}

#[test]
fn crash_after_every_step_of_image_add_and_rm_then_repair_or_rerun() {
    for step in 1..=3 {
        for rerun in [false, true] {
            let ns = setup("rbd", &format!("crash-add-{step}-{rerun}"), &["a"]);
            let (group, a) = (format!("rbd/{ns}/g"), format!("rbd/{ns}/a"));
            rbd_cg_ok(&["create", &group]);
            let a_id = image_id(&a);
            crash_at("image-add", step, &["image", "add", &group, &a]);
            if step < 3 {
                let listed = image_ls(&group);
                assert_eq!(listed[0]["status"], "adding", "visible as incomplete after step {step}");
                assert_eq!(rbd_cg(&["repair", &group, "--check"]).status.code(), Some(1), "--check sees it");
            }
            if rerun && step < 3 {
                rbd_cg_ok(&["image", "add", &group, &a]);
            } else {
                rbd_cg_ok(&["repair", &group]);
            }
            let listed = image_ls(&group);
            assert_eq!(
                (listed.len(), listed[0]["status"].as_str()),
                (1, Some("attached")),
                "step {step} rerun {rerun}"
            );
            assert_eq!(backrefs("rbd", &ns, &a_id).len(), 1);

            crash_at("image-remove", step, &["image", "rm", &group, &a]);
            if step < 3 {
                assert_eq!(image_ls(&group)[0]["status"], "removing");
                assert_eq!(image_ls(&group)[0]["state"], 1, "incomplete, in stock's words");
            }
            if rerun && step < 3 {
                rbd_cg_ok(&["image", "rm", &group, &a]);
            } else {
                rbd_cg_ok(&["repair", &group]);
            }
            assert!(image_ls(&group).is_empty(), "step {step} rerun {rerun}");
            assert!(backrefs("rbd", &ns, &a_id).is_empty());
            rbd_cg_ok(&["rm", &group]);
            assert!(assert_consistent(&cluster(), "rbd", &ns).is_empty());
        }
    }
}

#[test]
fn a_format_1_image_is_refused_with_a_clear_message() {
    // Pacific no longer creates format-1 images, but librbd still opens them; it detects
    // format 1 by the `<name>.rbd` header object. Write a genuine v1 header
    // (rbd_obj_header_ondisk: text, block name, signature, version, options, size, ...).
    let ns = setup("rbd", "format1", &[]);
    let mut header = b"<<< Rados Block Device Image >>>\n".to_vec();
    header.resize(40, 0);
    let mut block_name = b"rb.0.1234.5678".to_vec();
    block_name.resize(24, 0);
    header.extend_from_slice(&block_name);
    header.extend_from_slice(b"RBD\0"); // signature
    header.extend_from_slice(b"001.005\0"); // version
    header.extend_from_slice(&[22, 0, 0, 0]); // order 22, no crypt, no compression
    header.extend_from_slice(&(8u64 << 20).to_le_bytes()); // size
    header.extend_from_slice(&[0; 8 + 4 + 4 + 8]); // snap_seq, snap_count, reserved, snap_names_len
    let file = std::env::temp_dir().join(format!("rbd-cg-v1-{}.hdr", std::process::id()));
    std::fs::write(&file, &header).unwrap();
    ceph_tool_ok("rados", &["-p", "rbd", "-N", &ns, "put", "old.rbd", file.to_str().unwrap()]);
    let info = ceph_tool_ok("rbd", &["info", &format!("rbd/{ns}/old")]);
    assert!(info.contains("size 8 MiB"), "librbd opens it: {info}");

    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    let stderr = expect_errno(&rbd_cg(&["image", "add", &group, &format!("rbd/{ns}/old")]), libc::EINVAL);
    assert!(stderr.contains("format 1 images cannot join a group"), "{stderr}");
    assert!(image_ls(&group).is_empty());
}

#[test]
fn repair_drops_a_back_reference_without_a_member() {
    use rbd_cg_contract::methods::{BackRefRequest, IMAGE_GROUP_LINK};
    use rbd_cg_contract::records::GroupRef;
    let ns = setup("rbd", "dangling", &["member", "stray"]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    rbd_cg_ok(&["image", "add", &group, &format!("rbd/{ns}/member")]);
    let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&["info", &group, "--format", "json"])).unwrap();
    // Plant a back-reference to the group on an image that is not a member.
    let cluster = cluster();
    let io = ioctx(&cluster, "rbd", &ns);
    let stray_id = image_id(&format!("rbd/{ns}/stray"));
    let group_ref =
        GroupRef { pool_id: io.pool_id(), namespace: ns.clone(), group_id: info["id"].as_str().unwrap().into() };
    let request = rbd_cg_contract::encode(&BackRefRequest { image_id: stray_id.clone(), group: group_ref }).unwrap();
    io.exec_write(&format!("rbd_header.{stray_id}"), "rbd_cg", IMAGE_GROUP_LINK.name, &request).unwrap();
    assert_eq!(backrefs("rbd", &ns, &stray_id).len(), 1);

    let check = rbd_cg(&["repair", &group, "--check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stdout).contains("not a member"));
    rbd_cg_ok(&["repair", &group]);
    assert!(backrefs("rbd", &ns, &stray_id).is_empty());
    assert_eq!(backrefs("rbd", &ns, &image_id(&format!("rbd/{ns}/member"))).len(), 1, "the member keeps its link");
    assert_eq!(rbd_cg(&["repair", &group, "--check"]).status.code(), Some(0));
}
