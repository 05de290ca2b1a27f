//! Counting spans and collecting their distinct parents in first-seen
//! order, borrowing from the body until the end.

use std::borrow::Cow;
use std::collections::HashSet;

use super::OtelSpans;

/// Up to this many distinct parents are found by a scan of the list; past
/// it a set takes over (an export usually names one parent, or a few).
const SCAN: usize = 8;

#[derive(Default)]
pub(super) struct Tally<'a> {
    parents: Vec<Cow<'a, str>>,
    /// Filled once there are more than `SCAN` parents.
    seen: HashSet<Cow<'a, str>>,
    spans: usize,
    unparented: usize,
}

impl<'a> Tally<'a> {
    /// Records one `braintrust.parent` value of the current span.
    #[inline]
    pub fn parent(&mut self, value: Cow<'a, str>) {
        // Spans of a batch usually repeat the previous parent.
        if self.parents.last().is_some_and(|p| *p == value) {
            return;
        }
        if self.parents.len() <= SCAN {
            if self.parents.contains(&value) {
                return;
            }
        } else {
            if self.seen.is_empty() {
                self.seen.extend(self.parents.iter().cloned());
            }
            if !self.seen.insert(value.clone()) {
                return;
            }
        }
        self.parents.push(value);
    }

    /// Counts a span that carried `parents` values of `braintrust.parent`.
    #[inline]
    pub fn span(&mut self, parents: usize) {
        self.spans += 1;
        if parents == 0 {
            self.unparented += 1;
        }
    }

    pub fn finish(self) -> OtelSpans {
        OtelSpans {
            parents: self.parents.into_iter().map(Cow::into_owned).collect(),
            spans: self.spans,
            unparented: self.unparented,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_parents_in_first_seen_order_past_the_scan_limit() {
        let mut t = Tally::default();
        let names: Vec<String> = (0..60).map(|i| format!("project_id:p{}", (i * 7) % 20)).collect();
        for n in &names {
            t.parent(Cow::Borrowed(n));
            t.span(1);
        }
        t.span(0);
        let got = t.finish();
        let mut want: Vec<String> = Vec::new();
        for n in &names {
            if !want.contains(n) {
                want.push(n.clone());
            }
        }
        assert_eq!(got.parents, want);
        assert_eq!((got.spans, got.unparented), (61, 1));
    }
}
