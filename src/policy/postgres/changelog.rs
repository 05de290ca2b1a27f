//! The change log read for a catch-up (docs/operations.md, caching and
//! invalidation): the newest committed revision and every change of the
//! revisions after the one a replica applied, in one statement (so one
//! snapshot: the head and the changes agree), and whether they cover that
//! whole range. A replica that missed feed messages applies them as if
//! announced; when they do not cover the range it flushes instead.
//!
//! The triggers give every revision at least one row in `policy_changes`
//! and number revisions without holes (the counter row is locked until
//! commit, and a rolled-back transaction takes its number back), so a
//! revision of the range without a row was pruned from the log.

use super::PgStore;
use crate::policy::StoreError;

/// One revision of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRevision {
    pub revision: u64,
    /// When its last change was made (as in `PgStore::changes`).
    pub committed_at_ms: i64,
    /// `(kind, id)`, sorted; kinds as the store wrote them.
    pub changes: Vec<(String, String)>,
}

/// Whether a read covers the whole range `(after, head]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every revision of the range, with all its changes.
    Complete,
    /// Some revision of the range has no row: pruned from the log.
    Pruned,
    /// More than the limit of changes: not read (a flush is cheaper).
    TooMany,
    /// The store's newest revision is older than `after`: it is not the
    /// store that revision was applied from (restored from a backup,
    /// recreated).
    Rewound,
}

/// What [`PgStore::changes_since`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeLog {
    /// The newest committed revision when the log was read.
    pub head: u64,
    /// The revisions of `(after, head]` in order; empty unless `Complete`.
    pub revisions: Vec<LoggedRevision>,
    pub coverage: Coverage,
}

/// One row of the log: `(revision, kind, id, committed_at_ms)`.
type Row = (u64, String, String, i64);

impl ChangeLog {
    /// Groups `rows` (ordered by revision) read for `(after, head]` with at
    /// most `limit` changes (`rows` may hold one more: then there are more).
    pub fn of(after: u64, head: u64, rows: Vec<Row>, limit: usize) -> ChangeLog {
        let incomplete = |coverage| ChangeLog { head, revisions: Vec::new(), coverage };
        if head < after {
            return incomplete(Coverage::Rewound);
        }
        if rows.len() > limit {
            return incomplete(Coverage::TooMany);
        }
        let mut revisions: Vec<LoggedRevision> = Vec::new();
        for (revision, kind, id, at) in rows {
            match revisions.last_mut() {
                Some(r) if r.revision == revision => {
                    r.committed_at_ms = r.committed_at_ms.max(at);
                    r.changes.push((kind, id));
                }
                _ => revisions.push(LoggedRevision { revision, committed_at_ms: at, changes: vec![(kind, id)] }),
            }
        }
        if revisions.len() as u64 != head - after {
            return incomplete(Coverage::Pruned);
        }
        ChangeLog { head, revisions, coverage: Coverage::Complete }
    }
}

impl PgStore {
    /// The newest committed revision and the changes of every revision
    /// after `after` up to it, at most `limit` of them (see [`ChangeLog`]).
    /// One statement, answered from the primary key of `policy_changes`.
    pub async fn changes_since(&self, after: u64, limit: usize) -> Result<ChangeLog, StoreError> {
        let from = i64::try_from(after).map_err(|_| StoreError(format!("revision {after} out of range")))?;
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = self
            .bounded(self.timeout, async {
                let conn = self.pool.get().await?;
                let rows = conn
                    .query(
                        "SELECT h.revision, c.revision, c.kind, c.id, (extract(epoch FROM c.committed_at) * 1000)::bigint
                           FROM policy_revision h
                           LEFT JOIN LATERAL (
                                SELECT revision, kind, id, committed_at FROM policy_changes
                                 WHERE revision > $1 AND revision <= h.revision
                                 ORDER BY revision, kind, id LIMIT $2) c ON true
                          WHERE h.singleton
                          ORDER BY c.revision, c.kind, c.id",
                        &[&from, &fetch],
                    )
                    .await?;
                conn.release();
                Ok(rows)
            })
            .await?;
        let revision = |v: i64| u64::try_from(v).unwrap_or(0);
        let head = rows.first().map_or(0, |r| revision(r.get(0)));
        let changes = rows
            .iter()
            .filter_map(|r| {
                let at: Option<i64> = r.get(1);
                at.map(|at| (revision(at), r.get(2), r.get(3), r.get(4)))
            })
            .collect();
        self.observe_revision(head);
        Ok(ChangeLog::of(after, head, changes, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[(u64, &str, &str)]) -> Vec<Row> {
        r.iter().map(|(rev, k, i)| (*rev, k.to_string(), i.to_string(), *rev as i64 * 10)).collect()
    }

    #[test]
    fn groups_a_complete_range_by_revision() {
        let log = ChangeLog::of(4, 6, rows(&[(5, "acl", "a"), (5, "group", "g"), (6, "user", "u")]), 10);
        assert_eq!(log.coverage, Coverage::Complete);
        assert_eq!(log.head, 6);
        assert_eq!(
            log.revisions,
            vec![
                LoggedRevision {
                    revision: 5,
                    committed_at_ms: 50,
                    changes: vec![("acl".into(), "a".into()), ("group".into(), "g".into())]
                },
                LoggedRevision { revision: 6, committed_at_ms: 60, changes: vec![("user".into(), "u".into())] },
            ]
        );
    }

    #[test]
    fn nothing_new_is_complete() {
        assert_eq!(ChangeLog::of(7, 7, Vec::new(), 10).coverage, Coverage::Complete);
        assert_eq!(ChangeLog::of(7, 7, Vec::new(), 0).coverage, Coverage::Complete);
    }

    #[test]
    fn a_missing_revision_means_pruned() {
        let pruned = ChangeLog::of(4, 7, rows(&[(5, "acl", "a"), (7, "acl", "b")]), 10);
        assert_eq!((pruned.coverage, pruned.head, pruned.revisions.len()), (Coverage::Pruned, 7, 0));
        assert_eq!(ChangeLog::of(0, 3, Vec::new(), 10).coverage, Coverage::Pruned);
    }

    #[test]
    fn beyond_the_limit_is_too_many_and_a_head_behind_is_rewound() {
        let r = rows(&[(5, "acl", "a"), (5, "acl", "b"), (6, "acl", "c")]);
        assert_eq!(ChangeLog::of(4, 6, r.clone(), 3).coverage, Coverage::Complete);
        assert_eq!(ChangeLog::of(4, 6, r, 2).coverage, Coverage::TooMany);
        let rewound = ChangeLog::of(9, 3, Vec::new(), 10);
        assert_eq!((rewound.coverage, rewound.head), (Coverage::Rewound, 3));
    }
}
