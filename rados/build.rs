//! Build script of `rbd_cg_rados`, the client-side FFI layer.
//!
//! Runs `bindgen` over `ceph.h` (which includes `<rados/librados.h>` and
//! `<rbd/librbd.h>`) and writes `$OUT_DIR/ceph_bindings.rs`, which `src/sys.rs`
//! includes. The allowlist below is deliberately narrow: only the entry points
//! the safe layer (`src/cluster.rs`, `src/ioctx.rs`, `src/op.rs`, `src/watch.rs`,
//! `src/image.rs`, `src/admin.rs`) calls, plus the types and
//! constants they reach. Anything not listed here cannot be called from Rust by
//! accident, and the generated file stays small enough to review.
//!
//! Generating at build time (instead of checking bindings in) means the layout
//! of `rbd_snap_info_t` & co. always comes from the headers of the librados and
//! librbd that the binary is linked against.
//!
//! Headers are looked up in `$CEPH_INCLUDE_DIR` when set, else in the system
//! include directories. On Debian/Ubuntu they come from
//! `apt-get install librados-dev librbd-dev libclang-dev`.

use std::env;
use std::path::{Path, PathBuf};

/// What to install when something is missing.
const APT_HINT: &str = "install them with: apt-get install librados-dev librbd-dev libclang-dev \
     (or set CEPH_INCLUDE_DIR to a directory holding rados/librados.h and rbd/librbd.h)";

/// Every C function the safe layer calls. Patterns are anchored by bindgen.
const FUNCTIONS: &[&str] = &[
    // cluster handle
    "rados_create2",
    "rados_conf_read_file",
    "rados_conf_parse_env",
    "rados_conf_set",
    "rados_connect",
    "rados_shutdown",
    // pools and io contexts
    "rados_pool_lookup",
    "rados_pool_reverse_lookup",
    "rados_ioctx_create",
    "rados_ioctx_create2",
    "rados_ioctx_destroy",
    "rados_ioctx_set_namespace",
    "rados_ioctx_get_id",
    "rados_ioctx_get_pool_name",
    // plain object I/O
    "rados_read",
    "rados_write_full",
    "rados_remove",
    "rados_stat",
    "rados_buffer_free",
    // compound read ops
    "rados_create_read_op",
    "rados_release_read_op",
    "rados_read_op_exec",
    "rados_read_op_set_flags",
    "rados_read_op_omap_get_vals2",
    "rados_read_op_operate",
    "rados_omap_get_next2",
    "rados_omap_get_end",
    // compound write ops
    "rados_create_write_op",
    "rados_release_write_op",
    "rados_write_op_exec",
    "rados_write_op_operate",
    "rados_write_op_create",
    "rados_write_op_write",
    "rados_write_op_zero",
    "rados_write_op_truncate",
    "rados_write_op_remove",
    "rados_write_op_assert_exists",
    "rados_write_op_set_alloc_hint2",
    // asynchronous operations (src/aio.rs)
    "rados_aio_write_op_operate",
    "rados_aio_read_op_operate",
    "rados_aio_read",
    "rados_read_op_read",
    "rados_ioctx_selfmanaged_snap_set_write_ctx",
    "rbd_aio_create_completion",
    "rbd_aio_get_return_value",
    "rbd_aio_release",
    "rbd_aio_write",
    "rbd_aio_read",
    "rbd_aio_discard",
    "rbd_aio_write_zeroes",
    "rbd_aio_flush",
    "rbd_get_size",
    // the mirror daemon (rbd_cg_mirror): which cluster, reading a snapshot, its extents
    "rados_cluster_fsid",
    "rbd_diff_iterate2",
    // watch/notify, advisory locks, self-managed snapshot ids (fencing, src/fence)
    "rados_get_instance_id",
    "rados_watch3",
    "rados_watch_check",
    "rados_unwatch2",
    "rados_watch_flush",
    "rados_notify2",
    "rados_notify_ack",
    "rados_list_lockers",
    "rados_unlock",
    "rados_break_lock",
    "rados_blocklist_add",
    "rados_ioctx_selfmanaged_snap_create",
    "rados_aio_ioctx_selfmanaged_snap_create",
    "rados_aio_create_completion2",
    "rados_aio_wait_for_complete",
    "rados_aio_is_complete",
    "rados_aio_get_return_value",
    "rados_aio_release",
    "rados_ioctx_selfmanaged_snap_remove",
    // librbd
    "rbd_list2",
    "rbd_image_spec_list_cleanup",
    "rbd_create4",
    "rbd_image_options_create",
    "rbd_image_options_destroy",
    "rbd_image_options_set_uint64",
    "rbd_open",
    "rbd_open_by_id",
    "rbd_open_by_id_read_only",
    "rbd_open_read_only",
    "rbd_close",
    "rbd_get_id",
    "rbd_get_name",
    "rbd_get_features",
    "rbd_get_old_format",
    "rbd_get_flags",
    "rbd_get_data_pool_id",
    "rbd_watchers_list",
    "rbd_watchers_list_cleanup",
    "rbd_snap_create",
    "rbd_snap_list",
    "rbd_snap_list_end",
    "rbd_snap_remove",
    "rbd_snap_rollback_with_progress",
    // group clones (src/clone.rs)
    "rados_get_min_compatible_client",
    "rbd_clone3",
    "rbd_remove",
    "rbd_get_parent",
    "rbd_linked_image_spec_cleanup",
    "rbd_snap_spec_cleanup",
    "rbd_snap_is_protected",
    "rbd_snap_protect",
    "rbd_snap_unprotect",
    "rbd_snap_remove2",
    // operators' views (src/admin.rs): monitor commands, listing a placement group
    "rados_mon_command",
    "rados_nobjects_list_open",
    "rados_nobjects_list_seek",
    "rados_nobjects_list_next2",
    "rados_nobjects_list_close",
    // member snapshots in the group namespace (src/snap_record.rs)
    "rbd_snap_remove_by_id",
    "rados_write_op_omap_cmp2",
    "rados_write_op_omap_set2",
    "rados_read_op_omap_get_vals_by_keys2",
    // a member snapshot's clone children, before the journal writer unprotects it
    "rbd_snap_set_by_id",
    "rbd_list_children3",
];

/// Constants (`#define`s and anonymous-enum values) the safe layer uses.
const VARS: &[&str] = &[
    "RBD_FEATURE_.*",
    "RBD_FLAG_.*",
    "RBD_IMAGE_OPTION_.*",
    "RBD_SNAP_REMOVE_.*",
    "LIBRADOS_OPERATION_.*",
    "LIBRADOS_OP_FLAG_.*",
    "LIBRADOS_CREATE_.*",
    "LIBRADOS_CMPXATTR_OP_.*",
];

/// Prints a build error that says what to do, then stops the build.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

/// Directories searched for `rados/librados.h` and `rbd/librbd.h`.
fn include_dirs() -> Vec<PathBuf> {
    match env::var_os("CEPH_INCLUDE_DIR") {
        Some(dir) if !dir.is_empty() => vec![PathBuf::from(dir)],
        _ => vec![PathBuf::from("/usr/include"), PathBuf::from("/usr/local/include")],
    }
}

fn has_headers(dir: &Path) -> bool {
    dir.join("rados/librados.h").is_file() && dir.join("rbd/librbd.h").is_file()
}

/// The `rust-version` of the crate being built, as a bindgen target, if set and supported.
fn msrv_target() -> Option<bindgen::RustTarget> {
    let v = env::var("CARGO_PKG_RUST_VERSION").ok()?;
    let mut parts = v.trim().split('.');
    let major: u64 = parts.next()?.parse().ok()?;
    let minor: u64 = parts.next()?.parse().ok()?;
    let patch: u64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if major != 1 {
        return None;
    }
    bindgen::RustTarget::stable(minor, patch).ok()
}

fn main() {
    let manifest_dir = match env::var_os("CARGO_MANIFEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => fail("CARGO_MANIFEST_DIR is not set; run this through cargo"),
    };
    let out_dir = match env::var_os("OUT_DIR") {
        Some(d) => PathBuf::from(d),
        None => fail("OUT_DIR is not set; run this through cargo"),
    };
    let wrapper = manifest_dir.join("ceph.h");

    println!("cargo:rerun-if-changed={}", wrapper.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CEPH_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=CARGO_PKG_RUST_VERSION");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");

    let dirs = include_dirs();
    let Some(inc) = dirs.iter().find(|d| has_headers(d)) else {
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        fail(&format!(
            "Ceph client headers rados/librados.h and rbd/librbd.h not found in {}; {APT_HINT}",
            searched.join(", ")
        ));
    };
    // Regenerate when the installed Ceph headers change (package upgrade).
    println!("cargo:rerun-if-changed={}", inc.join("rados/librados.h").display());
    println!("cargo:rerun-if-changed={}", inc.join("rbd/librbd.h").display());

    let mut builder = bindgen::Builder::default();
    // Emit code that the crate's declared MSRV accepts, not only the running rustc.
    if let Some(target) = msrv_target() {
        builder = builder.rust_target(target);
    }
    builder = builder
        .header(wrapper.display().to_string())
        .clang_arg(format!("-I{}", inc.display()))
        .allowlist_recursively(true)
        .derive_debug(true)
        .generate_comments(false)
        .layout_tests(true);
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }

    // bindgen panics (instead of returning an error) when libclang cannot be
    // loaded; turn that into the same actionable message as a missing header.
    let generated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.generate()));
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!("bindgen failed on {}: {e}; {APT_HINT}", wrapper.display())),
        Err(_) => fail(&format!("bindgen could not run (is libclang installed?); {APT_HINT}")),
    };

    let out = out_dir.join("ceph_bindings.rs");
    if let Err(e) = bindings.write_to_file(&out) {
        fail(&format!("cannot write {}: {e}", out.display()));
    }

    println!("cargo:rustc-link-lib=rados");
    println!("cargo:rustc-link-lib=rbd");
}
