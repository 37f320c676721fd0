//! A MemBackend NBD server, for manual runs and benchmarks.
//!
//! ```text
//! cargo run --release -p rbd_cg_datapath --example nbd_mem_server -- \
//!     [--tcp 127.0.0.1:10809] [--unix /tmp/nbd.sock] [--export NAME=SIZE_MIB[:ro]]... \
//!     [--latency-us N] [--max-connections N]
//! ```
//! Default: one 1 GiB export `mem` (the default export) on 127.0.0.1:10809. Stops on
//! SIGTERM/SIGINT. Logs through `RUST_LOG` (e.g. `RUST_LOG=info`).

use std::sync::Arc;
use std::time::Duration;

use rbd_cg_datapath::nbd::{shutdown_on_signals, ExportInfo, MemBackend, Server, ServerConfig};

fn usage(msg: &str) -> ! {
    eprintln!("nbd_mem_server: {msg}");
    eprintln!("usage: nbd_mem_server [--tcp ADDR] [--unix PATH] [--export NAME=SIZE_MIB[:ro]]... [--latency-us N] [--max-connections N]");
    std::process::exit(2)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut tcp: Option<String> = None;
    let mut unix: Option<String> = None;
    let mut exports = Vec::new();
    let mut latency = None;
    let mut config = ServerConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--tcp" => tcp = Some(val()),
            "--unix" => unix = Some(val()),
            "--export" => {
                let v = val();
                let (name, rest) = v.split_once('=').unwrap_or_else(|| usage("--export NAME=SIZE_MIB[:ro]"));
                let (size, ro) = match rest.strip_suffix(":ro") {
                    Some(s) => (s, true),
                    None => (rest, false),
                };
                let mib: u64 = size.parse().unwrap_or_else(|_| usage("bad export size"));
                exports.push(ExportInfo::new(name, mib << 20).read_only(ro).multi_conn(true));
            }
            "--latency-us" => {
                latency = Some(Duration::from_micros(val().parse().unwrap_or_else(|_| usage("bad latency"))))
            }
            "--max-connections" => {
                config.max_connections = val().parse().unwrap_or_else(|_| usage("bad --max-connections"))
            }
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    if exports.is_empty() {
        exports.push(ExportInfo::new("mem", 1 << 30).multi_conn(true).description("in-memory export"));
    }
    if tcp.is_none() && unix.is_none() {
        tcp = Some("127.0.0.1:10809".to_owned());
    }
    let default = exports[0].name.clone();
    let mut backend = MemBackend::new(exports).with_default(default);
    if let Some(l) = latency {
        backend = backend.with_latency(l);
    }

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| usage(&e.to_string()));
    rt.block_on(async move {
        let server = Server::new(Arc::new(backend), config);
        shutdown_on_signals(server.shutdown_handle()).unwrap_or_else(|e| usage(&e.to_string()));
        let t = async {
            if let Some(addr) = &tcp {
                let l = tokio::net::TcpListener::bind(addr).await.unwrap_or_else(|e| usage(&format!("{addr}: {e}")));
                server.serve_tcp(l).await;
            }
        };
        let u = async {
            if let Some(path) = &unix {
                let _ = std::fs::remove_file(path);
                let l = tokio::net::UnixListener::bind(path).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
                server.serve_unix(l).await;
                let _ = std::fs::remove_file(path);
            }
        };
        tokio::join!(t, u);
    });
}
