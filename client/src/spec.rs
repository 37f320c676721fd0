//! `[POOL[/NAMESPACE]/]GROUP` and `[POOL[/NAMESPACE]]` specs, as `rbd group` takes them.

use crate::error::{Error, Result};
use rbd_cg_contract::names::validate_group_name;
use std::fmt;

/// Pool used when a spec names none, as in `rbd`.
pub const DEFAULT_POOL: &str = "rbd";

/// A pool and RBD namespace ("" = the default namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// Pool name.
    pub pool: String,
    /// RBD namespace, "" for none.
    pub namespace: String,
}

/// A group in a pool and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Where the group lives.
    pub location: PoolSpec,
    /// Group name.
    pub name: String,
}

fn invalid(spec: &str, why: &str) -> Error {
    Error::new(format!("invalid spec {spec:?}: {why}"), libc::EINVAL)
}

/// Splits `[POOL[/NAMESPACE]/]NAME` into its location (default pool when absent) and name.
fn split_location(spec: &str) -> Result<(PoolSpec, &str)> {
    match spec.rsplit_once('/') {
        None => Ok((PoolSpec::parse("")?, spec)),
        Some(("", _)) => Err(invalid(spec, "empty pool name")),
        Some((location, name)) => Ok((PoolSpec::parse(location).map_err(|_| invalid(spec, "bad pool part"))?, name)),
    }
}

impl PoolSpec {
    /// Parses `[POOL[/NAMESPACE]]`; empty means the default pool.
    pub fn parse(spec: &str) -> Result<PoolSpec> {
        let parts: Vec<&str> = if spec.is_empty() { vec![] } else { spec.split('/').collect() };
        match parts.as_slice() {
            [] => Ok(PoolSpec { pool: DEFAULT_POOL.into(), namespace: String::new() }),
            [pool] if !pool.is_empty() => Ok(PoolSpec { pool: (*pool).into(), namespace: String::new() }),
            [pool, ns] if !pool.is_empty() && !ns.is_empty() => {
                Ok(PoolSpec { pool: (*pool).into(), namespace: (*ns).into() })
            }
            _ => Err(invalid(spec, "expected [POOL[/NAMESPACE]]")),
        }
    }
}

impl GroupSpec {
    /// Parses `[POOL[/NAMESPACE]/]GROUP`.
    pub fn parse(spec: &str) -> Result<GroupSpec> {
        let (location, name) = split_location(spec)?;
        validate_group_name(name).map_err(|e| invalid(spec, &e.to_string()))?;
        Ok(GroupSpec { location, name: name.into() })
    }
}

impl fmt::Display for PoolSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.pool)
        } else {
            write!(f, "{}/{}", self.pool, self.namespace)
        }
    }
}

impl fmt::Display for GroupSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.location, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_rbd() {
        let g = GroupSpec::parse("db").unwrap();
        assert_eq!((g.location.pool.as_str(), g.location.namespace.as_str(), g.name.as_str()), ("rbd", "", "db"));
        let g = GroupSpec::parse("p/db").unwrap();
        assert_eq!((g.location.pool.as_str(), g.name.as_str()), ("p", "db"));
        let g = GroupSpec::parse("p/ns/db").unwrap();
        assert_eq!(g.to_string(), "p/ns/db");
        for bad in ["", "p/", "/db", "a/b/c/d", "p//db", "p/db@snap"] {
            assert_eq!(GroupSpec::parse(bad).unwrap_err().errno(), libc::EINVAL, "{bad:?}");
        }
        assert_eq!(PoolSpec::parse("").unwrap().pool, "rbd");
        assert_eq!(PoolSpec::parse("p/ns").unwrap().namespace, "ns");
        assert!(PoolSpec::parse("p/ns/x").is_err());
    }
}

/// An image in a pool and namespace: `[POOL[/NAMESPACE]/]IMAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Where the image lives.
    pub location: PoolSpec,
    /// Image name.
    pub name: String,
}

impl ImageSpec {
    /// Parses `[POOL[/NAMESPACE]/]IMAGE`.
    pub fn parse(spec: &str) -> Result<ImageSpec> {
        let (location, name) = split_location(spec)?;
        if name.is_empty() || name.contains('@') || name.chars().any(char::is_control) {
            return Err(invalid(spec, "bad image name"));
        }
        Ok(ImageSpec { location, name: name.into() })
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.location, self.name)
    }
}

/// A group snapshot: `[POOL[/NAMESPACE]/]GROUP@SNAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapSpec {
    /// The group.
    pub group: GroupSpec,
    /// Snapshot name.
    pub snap: String,
}

impl GroupSnapSpec {
    /// Parses `[POOL[/NAMESPACE]/]GROUP@SNAP`.
    pub fn parse(spec: &str) -> Result<GroupSnapSpec> {
        let Some((group, snap)) = spec.split_once('@') else {
            return Err(invalid(spec, "expected GROUP@SNAP"));
        };
        rbd_cg_contract::names::validate_snap_name(snap).map_err(|e| invalid(spec, &e.to_string()))?;
        Ok(GroupSnapSpec { group: GroupSpec::parse(group)?, snap: snap.into() })
    }
}
