// shim.cc: implements cls_rbd_cg_shim.h over Ceph's C++ objclass API.
//
// Rules every function here follows:
//  * `noexcept`, with the body inside `guarded()`: a C++ exception becomes -ENOMEM
//    (std::bad_alloc) or -EIO (anything else) and a line in the OSD log. Nothing throws
//    into Rust.
//  * Inputs arrive as (pointer, length) pairs and are copied into C++ containers; outputs
//    leave through sink callbacks that copy. No allocation crosses the boundary except
//    cls_alloc'd method output, which the OSD owns and frees.
//  * The cls_* functions below that are exported by ceph-osd but missing from the public
//    objclass.h are declared here with their exact signatures (checked with
//    `nm -D --defined-only /usr/bin/ceph-osd | c++filt`).

#include <cerrno>
#include <cstring>
#include <exception>
#include <map>
#include <new>
#include <string>

#include <rados/objclass.h>

#include "cls_rbd_cg_shim.h"

// Exported by ceph-osd, absent from the public header.
typedef int (*cls_method_call_t)(cls_method_context_t ctx, char *indata, int datalen,
                                 char **outdata, int *outdatalen);
extern "C" int cls_register_method(cls_handle_t hclass, const char *method, int flags,
                                   cls_method_call_t class_call, cls_method_handle_t *handle);
extern "C" void *cls_alloc(size_t size);
extern int cls_cxx_write_full(cls_method_context_t hctx, ceph::bufferlist *bl);
extern int cls_cxx_map_get_vals(cls_method_context_t hctx, const std::string &start_after,
                                const std::string &filter_prefix, uint64_t max_to_get,
                                std::map<std::string, ceph::bufferlist> *vals, bool *more);
extern int cls_cxx_map_set_vals(cls_method_context_t hctx,
                                const std::map<std::string, ceph::bufferlist> *map);
extern int cls_cxx_map_remove_key(cls_method_context_t hctx, const std::string &key);

namespace {

template <typename F>
int guarded(const char *what, F &&body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    cls_log(0, "rbd_cg: %s: out of memory", what);
    return -ENOMEM;
  } catch (const std::exception &e) {
    cls_log(0, "rbd_cg: %s: C++ exception: %s", what, e.what());
    return -EIO;
  } catch (...) {
    cls_log(0, "rbd_cg: %s: unknown C++ exception", what);
    return -EIO;
  }
}

void drain(const ceph::bufferlist &bl, cg_bytes_sink sink, void *sink_arg) {
  for (const auto &ptr : bl.buffers()) {
    sink(sink_arg, reinterpret_cast<const uint8_t *>(ptr.c_str()), ptr.length());
  }
}

}  // namespace

extern "C" int cg_shim_register_class(const char *name, cg_class_handle *out_handle) noexcept {
  return guarded("register class", [&] {
    // cls_register returns 1 on success.
    return cls_register(name, out_handle) > 0 ? 0 : -EIO;
  });
}

extern "C" int cg_shim_register_method(cg_class_handle cls, const char *name, int flags,
                                       cg_method_fn fn) noexcept {
  return guarded("register method", [&] {
    cls_method_handle_t handle = nullptr;
    int r = cls_register_method(cls, name, flags, fn, &handle);
    return r < 0 ? r : 0;
  });
}

extern "C" void cg_shim_log(int level, const char *msg) noexcept {
  try {
    cls_log(level, "%s", msg);
  } catch (...) {
    // Nothing sensible is left to report the failure of logging to.
  }
}

extern "C" void *cg_shim_alloc(size_t len) noexcept {
  try {
    return cls_alloc(len);
  } catch (...) {
    return nullptr;
  }
}

extern "C" int cg_shim_stat(cg_method_ctx ctx, uint64_t *size) noexcept {
  return guarded("stat", [&] {
    time_t mtime = 0;
    return cls_cxx_stat(ctx, size, &mtime);
  });
}

extern "C" int cg_shim_read(cg_method_ctx ctx, uint64_t len, cg_bytes_sink sink,
                            void *sink_arg) noexcept {
  return guarded("read", [&] {
    if (len > static_cast<uint64_t>(INT32_MAX)) {
      return -ERANGE;
    }
    ceph::bufferlist bl;
    int r = cls_cxx_read(ctx, 0, static_cast<int>(len), &bl);
    if (r < 0) {
      return r;
    }
    drain(bl, sink, sink_arg);
    return 0;
  });
}

extern "C" int cg_shim_read_at(cg_method_ctx ctx, uint64_t offset, uint64_t len,
                               cg_bytes_sink sink, void *sink_arg) noexcept {
  return guarded("read at", [&] {
    if (offset > static_cast<uint64_t>(INT32_MAX) || len > static_cast<uint64_t>(INT32_MAX)) {
      return -ERANGE;
    }
    ceph::bufferlist bl;
    int r = cls_cxx_read(ctx, static_cast<int>(offset), static_cast<int>(len), &bl);
    if (r < 0) {
      return r;
    }
    drain(bl, sink, sink_arg);
    return 0;
  });
}

extern "C" int cg_shim_write(cg_method_ctx ctx, uint64_t offset, const uint8_t *data,
                             size_t len) noexcept {
  return guarded("write", [&] {
    if (offset > static_cast<uint64_t>(INT32_MAX) || len > static_cast<size_t>(INT32_MAX)) {
      return -ERANGE;
    }
    // One copy, into memory the bufferlist owns: the transaction outlives this call and
    // the caller's buffer.
    ceph::bufferlist bl;
    bl.append(reinterpret_cast<const char *>(data), len);
    return cls_cxx_write(ctx, static_cast<int>(offset), static_cast<int>(len), &bl);
  });
}

extern "C" int cg_shim_create(cg_method_ctx ctx, int exclusive) noexcept {
  return guarded("create", [&] { return cls_cxx_create(ctx, exclusive != 0); });
}

extern "C" int cg_shim_write_full(cg_method_ctx ctx, const uint8_t *data, size_t len) noexcept {
  return guarded("write_full", [&] {
    ceph::bufferlist bl;
    bl.append(reinterpret_cast<const char *>(data), len);
    return cls_cxx_write_full(ctx, &bl);
  });
}

extern "C" int cg_shim_remove(cg_method_ctx ctx) noexcept {
  return guarded("remove", [&] { return cls_cxx_remove(ctx); });
}

extern "C" int cg_shim_omap_get(cg_method_ctx ctx, const char *key, size_t key_len,
                                cg_bytes_sink sink, void *sink_arg) noexcept {
  return guarded("omap get", [&] {
    ceph::bufferlist bl;
    int r = cls_cxx_map_get_val(ctx, std::string(key, key_len), &bl);
    if (r < 0) {
      return r;
    }
    drain(bl, sink, sink_arg);
    return 0;
  });
}

extern "C" int cg_shim_omap_list(cg_method_ctx ctx, const char *start_after,
                                 size_t start_after_len, const char *prefix, size_t prefix_len,
                                 uint64_t max_entries, cg_omap_sink sink, void *sink_arg,
                                 int *more) noexcept {
  return guarded("omap list", [&] {
    std::map<std::string, ceph::bufferlist> vals;
    bool more_flag = false;
    int r = cls_cxx_map_get_vals(ctx, std::string(start_after, start_after_len),
                                 std::string(prefix, prefix_len), max_entries, &vals,
                                 &more_flag);
    if (r < 0) {
      return r;
    }
    for (auto &kv : vals) {
      ceph::bufferlist &bl = kv.second;
      const char *data = bl.length() ? bl.c_str() : "";
      sink(sink_arg, kv.first.data(), kv.first.size(), reinterpret_cast<const uint8_t *>(data),
           bl.length());
    }
    *more = more_flag ? 1 : 0;
    return 0;
  });
}

extern "C" int cg_shim_omap_set(cg_method_ctx ctx, const char *const *keys,
                                const size_t *key_lens, const uint8_t *const *vals,
                                const size_t *val_lens, size_t n) noexcept {
  return guarded("omap set", [&] {
    std::map<std::string, ceph::bufferlist> entries;
    for (size_t i = 0; i < n; ++i) {
      ceph::bufferlist bl;
      bl.append(reinterpret_cast<const char *>(vals[i]), val_lens[i]);
      entries[std::string(keys[i], key_lens[i])] = std::move(bl);
    }
    return cls_cxx_map_set_vals(ctx, &entries);
  });
}

extern "C" int cg_shim_omap_remove(cg_method_ctx ctx, const char *key, size_t key_len) noexcept {
  return guarded("omap remove", [&] {
    return cls_cxx_map_remove_key(ctx, std::string(key, key_len));
  });
}
