/*
 * bindgen wrapper header for the client-side FFI layer (see client/build.rs).
 *
 * Only the public C APIs of librados and librbd are pulled in; build.rs keeps
 * the generated Rust narrow with an allowlist, so adding an include here does
 * not by itself widen the bindings.
 *
 * Provided on Debian/Ubuntu by: librados-dev librbd-dev
 */
#include <rados/librados.h>
#include <rbd/librbd.h>
