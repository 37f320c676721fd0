//! Builds the OSD-side shim: compiles `ceph-headers/shim.cc` (C++, against Ceph's
//! `objclass.h`) into a static library and generates Rust declarations for our own C
//! header `ceph-headers/cls_rbd_cg_shim.h` with bindgen.
//!
//! Environment: `CEPH_INCLUDE_DIR` points at a directory holding `rados/objclass.h`
//! (default `/usr/include`). Debian/Ubuntu: `apt-get install rados-objclass-dev
//! libradospp-dev libclang-dev`.
//!
//! No `-l` flag names a Ceph library: like the stock classes, the `cls_*` and
//! `ceph::buffer` symbols stay undefined and are resolved from `ceph-osd` at load time.

use std::env;
use std::path::{Path, PathBuf};

const HEADER: &str = "ceph-headers/cls_rbd_cg_shim.h";
const SHIM: &str = "ceph-headers/shim.cc";

fn env_tracked(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok()
}

fn main() {
    println!("cargo:rerun-if-changed={HEADER}");
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-changed=build.rs");

    let include_dir = PathBuf::from(env_tracked("CEPH_INCLUDE_DIR").unwrap_or_else(|| "/usr/include".into()));
    let objclass = include_dir.join("rados/objclass.h");
    if !objclass.is_file() {
        panic!(
            "{} not found. Install Ceph's class headers (Debian/Ubuntu: \
             `apt-get install rados-objclass-dev libradospp-dev libclang-dev`) \
             or set CEPH_INCLUDE_DIR to the directory that holds rados/objclass.h.",
            objclass.display()
        );
    }
    println!("cargo:rerun-if-changed={}", objclass.display());

    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file(SHIM)
        .include(&include_dir)
        .include("ceph-headers")
        .flag_if_supported("-fvisibility=hidden")
        .warnings(true)
        .compile("cls_rbd_cg_shim");

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindgen::Builder::default()
        .header(HEADER)
        .allowlist_function("cg_shim_.*")
        .allowlist_type("cg_.*")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {HEADER}: {e} (is libclang-dev installed?)"))
        .write_to_file(Path::new(&out).join("shim_bindings.rs"))
        .expect("writing shim bindings into OUT_DIR");
}
