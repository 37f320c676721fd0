//! What an operator sees of the tool itself (issue #14): `rbd-cg --version`, `rbd-cg
//! versions` (the class version of every OSD, how a rolling upgrade is watched), times in
//! plain output as `rbd` prints them (JSON keeps the milliseconds), and the shell
//! completions and man pages generated from the CLI definition.

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

/// Plain `info`, `snap ls` and `snap info` show when a group or snapshot was made as `rbd`
/// shows a timestamp (ctime's layout, local time, like `rbd snap ls`); JSON keeps `created_ms`.
#[test]
fn plain_output_shows_human_times_and_json_keeps_milliseconds() {
    let ns = namespace("times");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@s")]);
    let now_year = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| 1970 + d.as_secs() / 31_556_952)
        .unwrap_or(0);
    let looks_human = |text: &str| {
        // "Mon Dec  7 17:58:07 2026"
        let words: Vec<&str> = text.split_whitespace().collect();
        words.len() == 5
            && words[3].len() == 8
            && words[3].matches(':').count() == 2
            && words[4].parse::<u64>().is_ok_and(|y| y + 1 >= now_year && y <= now_year + 1)
    };
    let info = rbd_cg_ok(&["info", &group]);
    let stamp = info.lines().find_map(|l| l.trim().strip_prefix("create_timestamp: ")).expect("create_timestamp");
    assert!(looks_human(stamp), "{info}");
    assert!(!info.contains("created_ms"), "{info}");
    // A table like stock's: a header, then a row whose last column is the timestamp.
    let listed = rbd_cg_ok(&["snap", "ls", &group]);
    let mut lines = listed.lines();
    assert!(lines.next().is_some_and(|header| header.trim_end().ends_with("TIMESTAMP")), "{listed}");
    let row: Vec<&str> = lines.next().expect("one snapshot").split_whitespace().collect();
    assert!(row.len() >= 5 && looks_human(&row[row.len() - 5..].join(" ")), "{listed}");
    let snap_spec = format!("{group}@s");
    let snap = rbd_cg_ok(&["snap", "info", &snap_spec]);
    // `timestamp:`, as `rbd group snap info` names it.
    let stamp = snap.lines().find_map(|l| l.trim().strip_prefix("timestamp: ")).expect("timestamp");
    assert!(looks_human(stamp), "{snap}");
    for args in [vec!["info", group.as_str()], vec!["snap", "info", snap_spec.as_str()]] {
        let mut all = vec!["--format", "json"];
        all.extend(args.iter().copied());
        let json: Value = serde_json::from_str(&rbd_cg_ok(&all)).expect("JSON");
        assert!(json["created_ms"].as_u64().is_some_and(|ms| ms > 1_600_000_000_000), "{json}");
    }
}
