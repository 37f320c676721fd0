//! The asynchronous librados/librbd layer (`rbd_cg_rados::aio`) on the real cluster: writes,
//! reads and class calls as futures, hundreds in flight, futures dropped before their
//! operation completes, errors, and librbd image I/O checked against the stock `rbd` CLI.

mod common;

use common::*;
use rbd_cg_contract::methods::{Empty, GET_VERSION};
use rbd_cg_contract::names::DIRECTORY_OBJECT;
use rbd_cg_rados::aio::AioImage;
use rbd_cg_rados::ceph::cls_lock;
use rbd_cg_rados::cls::WriteBatch;
use rbd_cg_rados::image::Image;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

#[test]
fn writes_reads_and_class_calls_as_futures() {
    let cluster = cluster();
    let ns = namespace("aio-rados");
    let ioctx = ioctx(&cluster, "rbd", &ns);
    let rt = runtime();
    rt.block_on(async {
        // A write op with several steps, then plain reads.
        let mut batch = WriteBatch::new();
        batch.create(true).write(0, b"hello".to_vec()).write(8, b"world".to_vec()).zero(1, 2);
        ioctx.aio_write_batch("obj", &batch).await.expect("write batch");
        assert_eq!(ioctx.aio_read("obj", 0, 64).await.expect("read"), b"h\0\0lo\0\0\0world");
        assert_eq!(ioctx.aio_read("obj", 8, 3).await.expect("read"), b"wor");
        // An exclusive create of an existing object fails the whole op: nothing written.
        let mut again = WriteBatch::new();
        again.create(true).write(0, b"XXXXX".to_vec());
        assert_eq!(ioctx.aio_write_batch("obj", &again).await.unwrap_err().errno, libc::EEXIST);
        assert_eq!(&ioctx.aio_read("obj", 0, 5).await.expect("read")[..1], b"h");
        let mut cut = WriteBatch::new();
        cut.truncate(5);
        ioctx.aio_write_batch("obj", &cut).await.expect("truncate");
        assert_eq!(ioctx.aio_read("obj", 0, 64).await.expect("read").len(), 5);
        let mut gone = WriteBatch::new();
        gone.remove();
        ioctx.aio_write_batch("obj", &gone).await.expect("remove");
        assert_eq!(ioctx.aio_read("obj", 0, 1).await.unwrap_err().errno, libc::ENOENT);

        // A class call that fails names itself; one that succeeds replies.
        let mut guarded = WriteBatch::new();
        let assertion = cls_lock::AssertLocked { name: "nope".into(), cookie: String::new(), tag: String::new() };
        guarded.create(false).add(&cls_lock::ASSERT_LOCKED, &assertion).expect("encode").write(0, b"x".to_vec());
        let error = ioctx.aio_write_batch("guarded", &guarded).await.unwrap_err();
        assert!(error.op.contains("lock.assert_locked"), "{error}");
        assert_eq!(ioctx.aio_read("guarded", 0, 1).await.unwrap_err().errno, libc::ENOENT, "nothing was written");
        let rbd = cluster.ioctx("rbd").expect("pool");
        match rbd.aio_call(DIRECTORY_OBJECT, &GET_VERSION, &Empty {}).await {
            Ok(version) => assert_eq!(version.protocol_min, 1),
            Err(e) => assert_eq!(e.errno, libc::ENOENT, "only a pool without groups lacks the directory: {e}"),
        }
    });
}

#[test]
fn hundreds_in_flight_and_futures_dropped_early() {
    let cluster = cluster();
    let ns = namespace("aio-many");
    let ioctx = std::sync::Arc::new(std::sync::Mutex::new(ioctx(&cluster, "rbd", &ns)));
    let rt = runtime();
    rt.block_on(async {
        let futures: Vec<_> = {
            let ioctx = ioctx.lock().unwrap();
            (0..400u32)
                .map(|i| {
                    let mut batch = WriteBatch::new();
                    batch.write(0, i.to_le_bytes().repeat(1024));
                    ioctx.aio_write_batch(&format!("o{}", i % 50), &batch)
                })
                .collect()
        };
        for f in futures {
            f.await.expect("write");
        }
        // Writes to one object from one client apply in submission order: the last wins.
        for obj in 0..50u32 {
            let read = ioctx.lock().unwrap().aio_read(&format!("o{obj}"), 0, 4);
            let last = 350 + obj;
            assert_eq!(read.await.expect("read"), last.to_le_bytes());
        }
        // Dropped before completion: the operation still completes, nothing leaks or crashes.
        {
            let ioctx = ioctx.lock().unwrap();
            for i in 0..100u32 {
                let mut batch = WriteBatch::new();
                batch.write(0, vec![i as u8; 65536]);
                drop(ioctx.aio_write_batch("dropped", &batch));
                drop(ioctx.aio_read("dropped", 0, 65536));
            }
        }
        let settled = ioctx.lock().unwrap().aio_read("dropped", 0, 1);
        settled.await.expect("the dropped writes landed");
    });
}

#[test]
fn an_image_through_librbd_asynchronously() {
    let cluster = cluster();
    let ns = namespace("aio-image");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/img")]);
    let io = ioctx(&cluster, "rbd", &ns);
    let image = AioImage::new(Image::open(&io, "img").expect("open"));
    assert_eq!(image.size().expect("size"), 8 << 20);
    let rt = runtime();
    rt.block_on(async {
        let writes: Vec<_> = (0..64u64).map(|i| image.aio_write(i * 65536, vec![i as u8 + 1; 65536])).collect();
        for w in writes {
            w.await.expect("write");
        }
        image.aio_discard(65536, 65536).await.expect("discard");
        image.aio_write_zeroes(2 * 65536, 4096).await.expect("write zeroes");
        image.aio_flush().await.expect("flush");
        let read = image.aio_read(0, 3 * 65536).await.expect("read");
        assert!(read[..65536].iter().all(|&b| b == 1));
        assert!(read[65536..2 * 65536].iter().all(|&b| b == 0));
        assert!(read[2 * 65536..2 * 65536 + 4096].iter().all(|&b| b == 0));
        assert!(read[2 * 65536 + 4096..].iter().all(|&b| b == 3));
    });
    drop(image);
    let exported = ceph_tool("rbd", &["export", "--no-progress", &format!("rbd/{ns}/img"), "-"]);
    assert!(exported.status.success());
    assert_eq!(exported.stdout.len(), 8 << 20);
    assert!(exported.stdout[63 * 65536..64 * 65536].iter().all(|&b| b == 64));
    assert!(exported.stdout[65536..2 * 65536].iter().all(|&b| b == 0));
}
