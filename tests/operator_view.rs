//! What an operator sees of the tool itself (issue #14): `rbd-cg --version`, `rbd-cg
//! versions` (the class version of every OSD, how a rolling upgrade is watched), and the
//! shell completions and man pages generated from the CLI definition.

mod common;

use common::*;
use rbd_cg_contract::{CLASS_VERSION, PROTOCOL_MAX, PROTOCOL_MIN};
use serde_json::Value;

#[test]
fn version_names_the_client_the_protocol_and_the_record_formats() {
    let long = rbd_cg_ok(&["--version"]);
    let mut lines = long.lines();
    assert_eq!(lines.next(), Some(format!("rbd-cg {CLASS_VERSION}").as_str()), "{long}");
    assert!(long.contains(&format!("class protocol: {PROTOCOL_MIN}..={PROTOCOL_MAX}")), "{long}");
    assert!(long.contains("GroupHeader v2") && long.contains("every other record v1"), "{long}");
    assert_eq!(rbd_cg_ok(&["-V"]).trim(), format!("rbd-cg {CLASS_VERSION}"));
}

#[test]
fn versions_asks_every_osd_for_its_class() {
    // The pool has objects (the other tests' groups and images, and this one's).
    let ns = namespace("versions");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    rbd_cg_ok(&["create", &format!("rbd/{ns}/g")]);
    let json: Value = serde_json::from_str(&rbd_cg_ok(&["--format", "json", "versions", "rbd"])).expect("JSON");
    assert_eq!(json["client"]["version"], CLASS_VERSION);
    let osds = json["osds"].as_array().expect("osds");
    let dump: Value =
        serde_json::from_str(&ceph_tool_ok("ceph", &["osd", "dump", "--format", "json"])).expect("osd dump JSON");
    assert_eq!(osds.len(), dump["osds"].as_array().map_or(0, Vec::len), "one entry per OSD: {json}");
    for osd in osds {
        assert_eq!(osd["up"], true, "{osd}");
        assert_eq!(osd["class_version"], CLASS_VERSION, "{osd}");
        assert_eq!((osd["protocol_min"].as_u64(), osd["protocol_max"].as_u64()), (Some(1), Some(1)));
        // The object it was asked through lives on a PG this OSD leads.
        let probe = &osd["probe"];
        let map: Value = serde_json::from_str(&ceph_tool_ok(
            "ceph",
            &[
                "osd",
                "map",
                "rbd",
                probe["object"].as_str().unwrap_or_default(),
                probe["namespace"].as_str().unwrap_or_default(),
                "--format",
                "json",
            ],
        ))
        .expect("osd map JSON");
        assert_eq!(map["acting_primary"], osd["osd"], "{probe} is not led by osd.{}", osd["osd"]);
        assert_eq!(map["pgid"], probe["pg"]);
    }
    let plain = rbd_cg_ok(&["versions"]);
    assert!(plain.starts_with(&format!("client: rbd-cg {CLASS_VERSION}")), "{plain}");
    assert!(plain.contains(&format!("osd.0: rbd_cg {CLASS_VERSION}, protocol 1..=1 (asked through ")), "{plain}");
    expect_errno(&rbd_cg(&["versions", "no-such-pool"]), libc::ENOENT);
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let bash = rbd_cg_ok(&["completions", "bash"]);
    for word in ["snap", "rollback", "versions", "--image-name-format", "completions"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    assert!(rbd_cg_ok(&["completions", "zsh"]).starts_with("#compdef rbd-cg"));
    assert!(rbd_cg_ok(&["completions", "fish"]).contains("complete -c rbd-cg"));
    let page = rbd_cg_ok(&["man"]);
    assert!(page.contains(".TH rbd-cg 1") && page.contains("versions"), "{page}");
    let dir = std::env::temp_dir().join(format!("rbd-cg-man-{}", std::process::id()));
    let written = rbd_cg_ok(&["man", "--dir", dir.to_str().expect("utf-8")]);
    for page in ["rbd-cg.1", "rbd-cg-snap-create.1", "rbd-cg-image-rm.1", "rbd-cg-versions.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie"), "{page} is roff");
        assert!(written.contains(page), "{written}");
    }
    let snap_create = std::fs::read_to_string(dir.join("rbd-cg-snap-create.1")).expect("page");
    assert!(snap_create.contains("fence") && snap_create.contains("rbd\\-cg\\-snap\\-create"), "{snap_create}");
    let _ = std::fs::remove_dir_all(&dir);
}
