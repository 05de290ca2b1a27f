//! Token scopes (contract: "Scoped and derived tokens"): what a token may do
//! beyond its ACLs is nothing; a scope narrows it further, by object and
//! permission (`grants`) and by client address (`client_cidrs`).
//!
//! A derived token is evaluated with its own scope and every ancestor's
//! ([`Scopes`]): a child can never outgrow its parent, even after the parent
//! is narrowed, because the parent's current scope is part of the chain.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::types::{ObjectType, Permission};

/// One token's narrowing. `None` in a field: no narrowing on that side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Permission P on object O passes only if a grant lists P and names O
    /// or an ancestor of O; an empty list allows nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<ScopeGrant>>,
    /// The client address must lie in one; an empty list admits no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cidrs: Option<Vec<Cidr>>,
}

/// Permissions on one object (and everything below it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeGrant {
    pub object_type: ObjectType,
    pub object_id: String,
    pub permissions: Vec<Permission>,
}

impl ScopeGrant {
    fn names(&self, (object_type, id): (ObjectType, &str)) -> bool {
        self.object_type == object_type && self.object_id == id
    }
}

impl Scope {
    /// Whether the grants let `permission` through on the object whose
    /// ancestry (the object first, then its project, then its organization)
    /// is `ancestry`.
    pub fn allows(&self, permission: Permission, ancestry: &[(ObjectType, &str)]) -> bool {
        self.grants.as_ref().is_none_or(|grants| {
            grants.iter().any(|g| g.permissions.contains(&permission) && ancestry.iter().any(|&a| g.names(a)))
        })
    }

    /// Whether `addr` may use the token.
    pub fn admits(&self, addr: IpAddr) -> bool {
        self.client_cidrs.as_ref().is_none_or(|cidrs| cidrs.iter().any(|c| c.contains(addr)))
    }

    /// The scope that lets through only what both `self` and `other` let
    /// through. `is_ancestor(a, b)`: whether object `a` is `b` or an ancestor
    /// of `b` (the caller knows the hierarchy); a pair of grants whose objects
    /// are unrelated, or whose relation is unknown, gives nothing.
    pub fn intersect(
        &self,
        other: &Scope,
        is_ancestor: impl Fn((ObjectType, &str), (ObjectType, &str)) -> bool,
    ) -> Scope {
        let grants = match (&self.grants, &other.grants) {
            (None, g) | (g, None) => g.clone(),
            (Some(a), Some(b)) => {
                let mut out: Vec<ScopeGrant> = Vec::new();
                for x in a {
                    for y in b {
                        let deeper = if is_ancestor((x.object_type, &x.object_id), (y.object_type, &y.object_id)) {
                            y
                        } else if is_ancestor((y.object_type, &y.object_id), (x.object_type, &x.object_id)) {
                            x
                        } else {
                            continue;
                        };
                        let permissions: Vec<Permission> =
                            x.permissions.iter().copied().filter(|p| y.permissions.contains(p)).collect();
                        if !permissions.is_empty() {
                            out.push(ScopeGrant {
                                object_type: deeper.object_type,
                                object_id: deeper.object_id.clone(),
                                permissions,
                            });
                        }
                    }
                }
                Some(out)
            }
        };
        let client_cidrs = match (&self.client_cidrs, &other.client_cidrs) {
            (None, c) | (c, None) => c.clone(),
            (Some(a), Some(b)) => Some(a.iter().flat_map(|x| b.iter().filter_map(move |y| x.intersect(y))).collect()),
        };
        Scope { grants, client_cidrs }
    }
}

/// A token's scope and its ancestors' (own first). Every one must pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Arc<[Scope]>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Scopes(scopes.into_iter().filter(|s| *s != Scope::default()).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// See [`Scope::allows`]; true when there is no scope at all.
    pub fn allow(&self, permission: Permission, ancestry: &[(ObjectType, &str)]) -> bool {
        self.0.iter().all(|s| s.allows(permission, ancestry))
    }

    /// See [`Scope::admits`].
    pub fn admit(&self, addr: IpAddr) -> bool {
        self.0.iter().all(|s| s.admits(addr))
    }

    /// Whether some scope restricts client addresses (only then does a
    /// request's address matter).
    pub fn binds_addresses(&self) -> bool {
        self.0.iter().any(|s| s.client_cidrs.is_some())
    }
}

/// An address block, `addr/len` (IPv4 or IPv6; host bits may be set). An
/// address of the other family is never inside, IPv4-mapped IPv6 included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr)
    }

    /// The block inside both, if any (two blocks are nested or disjoint).
    fn intersect(&self, other: &Cidr) -> Option<Cidr> {
        let (a, b) = (self.0.trunc(), other.0.trunc());
        if a.contains(&b) {
            Some(Cidr(b))
        } else if b.contains(&a) {
            Some(Cidr(a))
        } else {
            None
        }
    }
}

/// A string that is not `addr/len`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a CIDR block (addr/len)")]
pub struct BadCidr(pub String);

impl FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // ipnet reads the length leniently in places; the contract's form is
        // plain decimal digits.
        let digits = s.split_once('/').map(|(_, len)| len);
        if !digits.is_some_and(|l| !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit())) {
            return Err(BadCidr(s.to_owned()));
        }
        s.parse::<ipnet::IpNet>().map(Cidr).map_err(|_| BadCidr(s.to_owned()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_strictly_and_match_by_family() {
        for bad in ["10.0.0.0/33", "10.0.0.0", "banana/8", "2001:db8::/129", "10.0.0.0/-1", "10.0.0.0/+8", "/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!(cidr("10.1.2.3/8").contains("10.200.0.1".parse().unwrap()), "host bits may be set");
        assert!(!cidr("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(!cidr("10.0.0.0/8").contains("::ffff:10.0.0.1".parse().unwrap()), "mapped v6 is another family");
        assert!(cidr("::/0").contains("2001:db8::1".parse().unwrap()));
        assert!(!cidr("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert_eq!(serde_json::to_string(&cidr("10.0.0.0/8")).unwrap(), "\"10.0.0.0/8\"");
    }

    fn grant(t: ObjectType, id: &str, perms: &[Permission]) -> ScopeGrant {
        ScopeGrant { object_type: t, object_id: id.into(), permissions: perms.to_vec() }
    }

    #[test]
    fn grants_name_the_object_or_an_ancestor() {
        let s =
            Scope { grants: Some(vec![grant(ObjectType::Project, "p", &[Permission::Update])]), client_cidrs: None };
        let log = [(ObjectType::ProjectLog, "p"), (ObjectType::Project, "p"), (ObjectType::Organization, "o")];
        assert!(s.allows(Permission::Update, &log));
        assert!(!s.allows(Permission::Read, &log));
        assert!(!s.allows(Permission::Update, &[(ObjectType::Organization, "o")]));
        let empty = Scope { grants: Some(vec![]), client_cidrs: None };
        assert!(!empty.allows(Permission::Update, &log));
        assert!(Scope::default().allows(Permission::Delete, &log));
        assert!(Scopes::new([Scope::default()]).is_empty(), "an empty scope narrows nothing");
    }

    #[test]
    fn intersection_keeps_the_deeper_object_and_the_common_permissions() {
        use Permission::*;
        let parent = Scope {
            grants: Some(vec![grant(ObjectType::Project, "p", &[Update, Read])]),
            client_cidrs: Some(vec![cidr("10.0.0.0/8")]),
        };
        let asked = Scope {
            grants: Some(vec![
                grant(ObjectType::Experiment, "e", &[Update, Delete]),
                grant(ObjectType::Dataset, "x", &[Read]),
            ]),
            client_cidrs: Some(vec![cidr("10.1.0.0/16"), cidr("192.168.0.0/16")]),
        };
        let tree =
            |a: (ObjectType, &str), b: (ObjectType, &str)| a == b || (a == (ObjectType::Project, "p") && b.1 == "e");
        let child = parent.intersect(&asked, tree);
        assert_eq!(child.grants, Some(vec![grant(ObjectType::Experiment, "e", &[Update])]));
        assert_eq!(child.client_cidrs, Some(vec![cidr("10.1.0.0/16")]));
        assert_eq!(Scope::default().intersect(&asked, tree), asked);
    }
}
