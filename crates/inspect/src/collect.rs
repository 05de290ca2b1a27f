//! Distinct targets in first-seen order, without allocating for repeats.

use std::borrow::Cow;
use std::collections::HashSet;

use loggate_model::types::{ObjectRef, ObjectType, Permission};

use super::{Target, Targets};

/// Up to this many distinct targets are found by a scan of the list; past
/// it a set takes over (a batch usually writes to one or a few objects).
const SCAN: usize = 8;

#[derive(Default)]
pub(crate) struct Collector<'a> {
    targets: Vec<Target>,
    /// Filled once there are more than `SCAN` targets.
    seen: HashSet<(ObjectType, Permission, Cow<'a, str>)>,
    rows: usize,
}

impl<'a> Collector<'a> {
    /// Counts one row.
    #[inline]
    pub fn row(&mut self) {
        self.rows += 1;
    }

    #[inline]
    pub fn add(&mut self, object_type: ObjectType, id: Cow<'a, str>, permission: Permission) {
        let same = |t: &Target| t.permission == permission && t.object.object_type == object_type && t.object.id == *id;
        // Batches usually repeat the previous row's target.
        if self.targets.last().is_some_and(same) {
            return;
        }
        if self.targets.len() <= SCAN {
            if self.targets.iter().any(same) {
                return;
            }
        } else {
            if self.seen.is_empty() {
                let known =
                    self.targets.iter().map(|t| (t.object.object_type, t.permission, Cow::Owned(t.object.id.clone())));
                self.seen.extend(known);
            }
            if !self.seen.insert((object_type, permission, id.clone())) {
                return;
            }
        }
        self.targets.push(Target { object: ObjectRef::new(object_type, id.into_owned()), permission });
    }

    pub fn finish(self) -> Targets {
        Targets { targets: self.targets, rows: self.rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_in_first_seen_order() {
        let mut c = Collector::default();
        for (t, id, p) in [
            (ObjectType::Experiment, "e", Permission::Update),
            (ObjectType::Dataset, "d", Permission::Update),
            (ObjectType::Experiment, "e", Permission::Update),
            (ObjectType::Experiment, "e", Permission::Delete),
            (ObjectType::Dataset, "d", Permission::Update),
        ] {
            c.row();
            c.add(t, Cow::Borrowed(id), p);
        }
        let t = c.finish();
        assert_eq!(t.rows, 5);
        let got: Vec<String> = t.targets.iter().map(|t| format!("{}/{}", t.object, t.permission)).collect();
        assert_eq!(got, ["experiment:e/update", "dataset:d/update", "experiment:e/delete"]);
    }

    #[test]
    fn many_targets_stay_distinct_past_the_scan_limit() {
        let mut c = Collector::default();
        let ids: Vec<String> = (0..40).map(|i| format!("id{}", i % 20)).collect();
        for id in &ids {
            c.row();
            c.add(ObjectType::Experiment, Cow::Borrowed(id), Permission::Update);
        }
        let t = c.finish();
        assert_eq!(t.rows, 40);
        let got: Vec<&str> = t.targets.iter().map(|t| &*t.object.id).collect();
        let want: Vec<String> = (0..20).map(|i| format!("id{i}")).collect();
        assert_eq!(got, want);
    }
}
