//! Which version of the `rbd_cg` class each OSD runs: what an operator watches during a
//! rolling upgrade (`rbd-cg versions`).
//!
//! A class method runs on the primary OSD of the object it is called on, and a read method
//! only on an object that exists. So each OSD is asked through an existing object of a
//! placement group it leads: for each PG of the pools probed, the first object listed from
//! the PG's position (read-only: [`IoCtx::first_object_from`] reads one listing page) is
//! mapped to its PG and acting primary (`ceph osd map`, a monitor command), and
//! `get_version` is called on it when that OSD has not been asked yet. The walk stops as soon as every OSD that is up has
//! answered. An OSD that leads no PG holding an object is reported as not asked (it runs no
//! method of these pools until one is created there); an OSD that is down cannot be asked.
//!
//! Answers are what the OSD runs *now*: an OSD loads a class once (at its first call) and
//! keeps it until it restarts, so a new `libcls_rbd_cg.so` in its class dir shows only
//! after that OSD restarts.

use crate::{Error, Result};
use rbd_cg_rados::admin::ListedObject;
use rbd_cg_rados::rbd_cg::class_version;
use rbd_cg_rados::{Cluster, IoCtx};
use serde_json::Value;
use std::collections::BTreeMap;

/// What one OSD answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassAnswer {
    /// The class runs there, in this version.
    Version {
        /// The class crate version (`get_version`).
        class_version: String,
        /// The protocol range it speaks.
        protocol: (u16, u16),
    },
    /// The call failed: the class is missing or not permitted there (`EOPNOTSUPP`,
    /// `EPERM`), or another error.
    Failed {
        /// Positive errno.
        errno: i32,
        /// What failed.
        message: String,
    },
}

/// One OSD of the cluster and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsdClass {
    /// OSD id.
    pub osd: i64,
    /// Up in the OSD map.
    pub up: bool,
    /// The answer, with the object it was asked through (`pool`, namespace, object name);
    /// `None` when it was not asked (down, or no object of the pools probed on a PG it leads).
    pub answer: Option<(ClassAnswer, Probe)>,
}

/// The object an OSD was asked through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Pool name.
    pub pool: String,
    /// RADOS namespace (`""` = default).
    pub namespace: String,
    /// Object name.
    pub object: String,
    /// Placement group id, `<pool id>.<ps in hex>` (as `ceph osd map` prints it).
    pub pg: String,
}

fn mon_json(cluster: &Cluster, command: &Value) -> Result<Value> {
    let reply = cluster.mon_command(&command.to_string())?;
    serde_json::from_slice(&reply.out)
        .map_err(|e| Error::new(format!("mon command {command}: answer is not JSON: {e}"), libc::EIO))
}

/// A pool of the OSD map: name, number of PGs.
struct PoolInfo {
    name: String,
    pg_num: u32,
}

/// Asks every OSD of the cluster which class version it runs, through objects of `pools`
/// (all pools when empty, in the OSD map's order), and returns one entry per OSD, by id.
pub fn class_versions(cluster: &Cluster, pools: &[String]) -> Result<Vec<OsdClass>> {
    let dump = mon_json(cluster, &serde_json::json!({"prefix": "osd dump", "format": "json"}))?;
    let mut osds: BTreeMap<i64, OsdClass> = BTreeMap::new();
    for osd in dump["osds"].as_array().into_iter().flatten() {
        let Some(id) = osd["osd"].as_i64() else { continue };
        osds.insert(id, OsdClass { osd: id, up: osd["up"].as_i64() == Some(1), answer: None });
    }
    let all_pools: Vec<PoolInfo> = dump["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(PoolInfo {
                name: p["pool_name"].as_str()?.to_owned(),
                pg_num: u32::try_from(p["pg_num"].as_u64()?).ok()?,
            })
        })
        .collect();
    let probed: Vec<&PoolInfo> = if pools.is_empty() {
        all_pools.iter().collect()
    } else {
        pools
            .iter()
            .map(|name| {
                all_pools
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or_else(|| Error::new(format!("pool {name} does not exist"), libc::ENOENT))
            })
            .collect::<Result<_>>()?
    };
    let pending = |osds: &BTreeMap<i64, OsdClass>| osds.values().any(|o| o.up && o.answer.is_none());
    for pool in probed {
        if !pending(&osds) {
            break;
        }
        let mut ioctx = match cluster.ioctx(&pool.name) {
            Ok(ioctx) => ioctx,
            Err(e) => {
                log::warn!("pool {}: {e}", pool.name);
                continue;
            }
        };
        if let Err(e) = probe_pool(cluster, &mut ioctx, pool, &mut osds) {
            // Another pool may still answer (caps may cover only some pools).
            log::warn!("pool {}: {e}", pool.name);
        }
    }
    Ok(osds.into_values().collect())
}

/// Walks `pool`'s PGs, asking each not-yet-asked primary through the PG's first object.
fn probe_pool(cluster: &Cluster, ioctx: &mut IoCtx, pool: &PoolInfo, osds: &mut BTreeMap<i64, OsdClass>) -> Result<()> {
    let mut seen_pgs = std::collections::BTreeSet::new();
    for position in 0..pool.pg_num {
        if !osds.values().any(|o| o.up && o.answer.is_none()) {
            break;
        }
        let Some(object) = ioctx.first_object_from(position)? else { break };
        if !object.key.is_empty() {
            continue; // locator keys: not ours to reach (RBD never sets one)
        }
        let map = mon_json(
            cluster,
            &serde_json::json!({"prefix": "osd map", "pool": pool.name, "object": object.oid,
                                "nspace": object.namespace, "format": "json"}),
        )?;
        let (Some(primary), Some(pg)) = (map["acting_primary"].as_i64(), map["pgid"].as_str()) else { continue };
        // An empty PG's position lists the next PG's first object: met before, maybe.
        if !seen_pgs.insert(pg.to_owned()) {
            continue;
        }
        let Some(entry) = osds.get_mut(&primary) else { continue };
        if entry.answer.is_some() {
            continue;
        }
        if let Some(answer) = ask(ioctx, &object)? {
            let probe = Probe {
                pool: pool.name.clone(),
                namespace: object.namespace.clone(),
                object: object.oid.clone(),
                pg: pg.to_owned(),
            };
            entry.answer = Some((answer, probe));
        }
    }
    Ok(())
}

/// `get_version` on `object`; `None` when the object vanished meanwhile (try another).
fn ask(ioctx: &mut IoCtx, object: &ListedObject) -> Result<Option<ClassAnswer>> {
    ioctx.set_namespace(&object.namespace)?;
    Ok(match class_version(ioctx, &object.oid) {
        Ok(v) => {
            Some(ClassAnswer::Version { class_version: v.class_version, protocol: (v.protocol_min, v.protocol_max) })
        }
        Err(e) if e.is_not_found() => None,
        Err(e) => Some(ClassAnswer::Failed { errno: e.errno, message: e.to_string() }),
    })
}
