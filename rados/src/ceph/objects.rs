//! Names of stock RBD objects (format 2 images), as librbd makes them
//! (`src/librbd/Utils.cc`, `src/cls/rbd/cls_rbd_types.h`).

/// The per-pool (and per-namespace) image directory: names ↔ ids (`cls_rbd.dir_*`).
pub const RBD_DIRECTORY: &str = "rbd_directory";
/// Prefix of an image's header object.
pub const IMAGE_HEADER_PREFIX: &str = "rbd_header.";
/// Prefix of an image's id object (name → id).
pub const IMAGE_ID_PREFIX: &str = "rbd_id.";
/// Prefix of an image's object map objects.
pub const OBJECT_MAP_PREFIX: &str = "rbd_object_map.";

/// `rbd_header.<image id>`: the image's header (features, size, snapshots, locks, watch).
pub fn image_header(image_id: &str) -> String {
    format!("{IMAGE_HEADER_PREFIX}{image_id}")
}

/// `rbd_id.<image name>`: holds the image's id.
pub fn image_id_object(image_name: &str) -> String {
    format!("{IMAGE_ID_PREFIX}{image_name}")
}

/// The object map object of an image (`snap_id: None`, the head) or of one of its
/// snapshots (`rbd_object_map.<id>.<snap id as 16 hex digits>`).
pub fn object_map(image_id: &str, snap_id: Option<u64>) -> String {
    match snap_id {
        None => format!("{OBJECT_MAP_PREFIX}{image_id}"),
        Some(id) => format!("{OBJECT_MAP_PREFIX}{image_id}.{id:016x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_librbds() {
        assert_eq!(image_header("10ab"), "rbd_header.10ab");
        assert_eq!(image_id_object("disk"), "rbd_id.disk");
        assert_eq!(object_map("abc", Some(0x1c)), "rbd_object_map.abc.000000000000001c");
        assert_eq!(object_map("abc", None), "rbd_object_map.abc");
    }
}
