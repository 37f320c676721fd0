/*
 * cls_rbd_cg_shim.h: the C ABI between the Rust class and Ceph's objclass API.
 *
 * Ceph's objclass API is C++ (std::string, std::map, ceph::bufferlist) and omap access
 * exists only there, so Rust cannot call it directly. Every function here is implemented
 * in shim.cc as `extern "C" ... noexcept`: it catches every C++ exception and returns a
 * negative errno instead, so no exception ever reaches Rust and no unwinding crosses
 * the boundary. Memory never crosses allocators: data leaves the shim only through the
 * caller's sink callbacks (which copy), and method output is allocated with cls_alloc,
 * which the OSD frees.
 *
 * Return values are 0 (or a count) on success and a negative errno on failure, exactly
 * as the underlying cls_* call reports it.
 */
#ifndef CLS_RBD_CG_SHIM_H
#define CLS_RBD_CG_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define CG_NOEXCEPT noexcept
extern "C" {
#else
#define CG_NOEXCEPT
#endif

/** The OSD's per-call method context (cls_method_context_t). */
typedef void *cg_method_ctx;
/** The class handle returned by registration (cls_handle_t). */
typedef void *cg_class_handle;

/**
 * A C-style class method, as the OSD calls it: input bytes in, output through *out
 * (allocated with cg_shim_alloc, owned by the OSD afterwards).
 */
typedef int (*cg_method_fn)(cg_method_ctx ctx, char *in, int in_len, char **out, int *out_len);

/** Receives one run of bytes; must copy them and must not unwind. */
typedef void (*cg_bytes_sink)(void *sink, const uint8_t *data, size_t len);

/** Receives one omap key and value; must copy them and must not unwind. */
typedef void (*cg_omap_sink)(void *sink, const char *key, size_t key_len, const uint8_t *val,
                             size_t val_len);

/** cls_register(): 0 on success, -EIO if the OSD refused. */
int cg_shim_register_class(const char *name, cg_class_handle *out_handle) CG_NOEXCEPT;

/** cls_register_method() with a C-style method; 0 on success. */
int cg_shim_register_method(cg_class_handle cls, const char *name, int flags, cg_method_fn fn) CG_NOEXCEPT;

/** cls_log(level, "%s", msg). */
void cg_shim_log(int level, const char *msg) CG_NOEXCEPT;

/** cls_alloc(): memory the OSD takes ownership of as method output; NULL on failure. */
void *cg_shim_alloc(size_t len) CG_NOEXCEPT;

/** cls_cxx_stat(): object size in *size; -ENOENT if the object does not exist. */
int cg_shim_stat(cg_method_ctx ctx, uint64_t *size) CG_NOEXCEPT;

/** cls_cxx_read() of [0, len): the bytes go to sink. */
int cg_shim_read(cg_method_ctx ctx, uint64_t len, cg_bytes_sink sink, void *sink_arg) CG_NOEXCEPT;

/**
 * cls_cxx_read() of up to len bytes at offset (fewer at the end of the data): the bytes go
 * to sink. -ERANGE if offset or len exceeds INT32_MAX (the OSD API takes ints).
 */
int cg_shim_read_at(cg_method_ctx ctx, uint64_t offset, uint64_t len, cg_bytes_sink sink,
                    void *sink_arg) CG_NOEXCEPT;

/**
 * cls_cxx_write() of len bytes at offset (creating the object; the data is copied).
 * -ERANGE if offset or len exceeds INT32_MAX (the OSD API takes ints).
 */
int cg_shim_write(cg_method_ctx ctx, uint64_t offset, const uint8_t *data, size_t len) CG_NOEXCEPT;

/** cls_cxx_create(exclusive): -EEXIST if exclusive and the object exists. */
int cg_shim_create(cg_method_ctx ctx, int exclusive) CG_NOEXCEPT;

/** cls_cxx_write_full(): replaces the object's data. */
int cg_shim_write_full(cg_method_ctx ctx, const uint8_t *data, size_t len) CG_NOEXCEPT;

/** cls_cxx_remove(). */
int cg_shim_remove(cg_method_ctx ctx) CG_NOEXCEPT;

/** cls_cxx_map_get_val(): the value goes to sink; -ENOENT if the key is absent. */
int cg_shim_omap_get(cg_method_ctx ctx, const char *key, size_t key_len, cg_bytes_sink sink,
                     void *sink_arg) CG_NOEXCEPT;

/**
 * cls_cxx_map_get_vals(): up to max_entries keys strictly after start_after that begin
 * with prefix, in key order, each given to sink. *more says whether more follow.
 */
int cg_shim_omap_list(cg_method_ctx ctx, const char *start_after, size_t start_after_len,
                      const char *prefix, size_t prefix_len, uint64_t max_entries,
                      cg_omap_sink sink, void *sink_arg, int *more) CG_NOEXCEPT;

/** cls_cxx_map_set_vals() of n keys and values given as parallel arrays. */
int cg_shim_omap_set(cg_method_ctx ctx, const char *const *keys, const size_t *key_lens,
                     const uint8_t *const *vals, const size_t *val_lens, size_t n) CG_NOEXCEPT;

/** cls_cxx_map_remove_key(). */
int cg_shim_omap_remove(cg_method_ctx ctx, const char *key, size_t key_len) CG_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* CLS_RBD_CG_SHIM_H */
