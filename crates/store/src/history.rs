//! The SQLite store's derived history file: per-account and per-reference indexes of the
//! transfer log, built off the commit path.
//!
//! A B-tree keyed by account takes each new entry at a random page, so indexing a chunk of
//! the log rewrites about one page per entry; on a shared disk that write volume delays the
//! ledger's own fsyncs (measured: p99 commit latency from 3 ms to 25 ms). Here the history is
//! a small log-structured merge tree instead: every chunk of the log becomes one new sorted
//! *run* whose entries append at the right edge of the B-trees (`run` leads every key), and
//! once a level holds [`RUN_FANOUT`] runs they are merged, streaming, into one run of the next
//! level. Each entry is written once per level, sequentially.
//!
//! Every step is bounded: a merge writes its new run a slice at a time, invisible until one
//! short transaction swaps it in for its sources, and the sources' entries are deleted a slice
//! at a time afterwards. A long transaction here would hold back the ledger's checkpoints, and
//! a large checkpoint's fsync delays the writer's commits (measured: p99 from 4 ms to 40 ms).
//!
//! Runs cover disjoint, contiguous ranges of time, and every run of a level is older than every
//! run of the level below: data enters at level 0 and a merge takes a whole level. A read walks
//! the runs from newest to oldest (or back) and stops as soon as its page is full.

use crate::StoreError;
use rusqlite::types::FromSql;
use rusqlite::{Connection, OptionalExtension, ToSql, Transaction, TransactionBehavior, params};
use std::collections::VecDeque;
use std::path::Path;

const HISTORY_SCHEMA: &str = include_str!("../migrations/sqlite/history.sql");
/// Bumped whenever the history's layout changes; a file of another version is rebuilt.
const HISTORY_VERSION: i64 = 3;
/// Runs of one level that are merged into one run of the next.
const RUN_FANOUT: i64 = 8;
/// Runs of this level are never merged further, so that one merge stays bounded (with chunks
/// of 10,000 transfers, a top-level run holds 5.12 million); a read may probe every top-level
/// run, about 20 per hundred million transfers.
const LEVEL_TOP: i64 = 3;

/// A run's place in time.
#[derive(Clone)]
struct Run {
    run: i64,
    first_timestamp_ns: i64,
    last_timestamp_ns: i64,
}

pub(crate) struct History {
    connection: Connection,
    /// Entries a step of a merge or of garbage collection writes or deletes at most.
    step_entries_max: usize,
    /// The merge under way, if any; lost on restart, when its partial run becomes garbage.
    merge: Option<Merge>,
}

/// Runs of one level being merged into `run_new`, accounts first, then references.
struct Merge {
    sources: Vec<Run>,
    level_new: i64,
    run_new: i64,
    accounts: MergeCursor<i64>,
    references: MergeCursor<String>,
}

/// Where a streaming merge of one table stands: per source run, what has been read and not
/// yet written, and the last key read.
struct MergeCursor<K> {
    table: &'static str,
    key_column: &'static str,
    sources: Vec<SourceCursor<K>>,
}

struct SourceCursor<K> {
    run: i64,
    buffer: VecDeque<(K, i64)>,
    after: Option<(K, i64)>,
    exhausted: bool,
}

/// The entries of one chunk of the log, sorted.
pub(crate) struct Chunk {
    pub accounts: Vec<(i64, i64)>,
    pub references: Vec<(String, i64)>,
    pub first_timestamp_ns: i64,
    pub last_timestamp_ns: i64,
}

impl History {
    /// Opens the history file; one that cannot be read or is of another version starts again
    /// from nothing (it is rebuilt from the log).
    pub fn open(
        path: &Path,
        step_entries_max: usize,
        open_wal: impl Fn(&Path) -> Result<Connection, StoreError>,
    ) -> Result<History, StoreError> {
        assert!(step_entries_max > 0);
        let open = || -> Result<History, StoreError> {
            let connection = open_wal(path)?;
            let version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version != HISTORY_VERSION {
                connection.execute_batch(
                    "DROP TABLE IF EXISTS account_entries; DROP TABLE IF EXISTS reference_entries; \
                     DROP TABLE IF EXISTS runs; DROP TABLE IF EXISTS garbage; DROP TABLE IF EXISTS indexed_through;",
                )?;
                connection.execute_batch(HISTORY_SCHEMA)?;
                connection.execute_batch(&format!("PRAGMA user_version = {HISTORY_VERSION}"))?;
            }
            let history = History {
                connection,
                step_entries_max,
                merge: None,
            };
            history.indexed_through()?;
            Ok(history)
        };
        open().or_else(|error| {
            eprintln!(
                "zhifu-ledger: history index {} is unreadable ({error}); rebuilding it",
                path.display()
            );
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
            open()
        })
    }

    /// Forgets everything: the next upkeep starts from the beginning of the log.
    pub fn reset(&mut self) -> Result<(), StoreError> {
        self.merge = None;
        self.connection.execute_batch(
            "BEGIN IMMEDIATE; DELETE FROM account_entries; DELETE FROM reference_entries; \
             DELETE FROM runs; DELETE FROM garbage; UPDATE indexed_through SET timestamp_ns = 0; COMMIT;",
        )?;
        Ok(())
    }

    /// Every transfer up to this timestamp is in the history.
    pub fn indexed_through(&self) -> Result<i64, StoreError> {
        indexed_through(&self.connection)
    }

    /// The account's entries strictly before `before`, newest first, at most `limit`, and the
    /// watermark they were read at (one snapshot).
    pub fn account_timestamps(
        &self,
        account: i64,
        before: i64,
        limit: usize,
    ) -> Result<(i64, Vec<i64>), StoreError> {
        let snapshot = self.connection.unchecked_transaction()?;
        let indexed = indexed_through(&snapshot)?;
        let mut statement = snapshot.prepare_cached(
            "SELECT timestamp_ns FROM account_entries WHERE run = ?1 AND account_id = ?2 AND timestamp_ns < ?3 \
             ORDER BY timestamp_ns DESC LIMIT ?4",
        )?;
        let mut timestamps = Vec::new();
        for run in runs(&snapshot, true)? {
            if timestamps.len() >= limit {
                break;
            }
            if run.first_timestamp_ns >= before {
                continue;
            }
            let left = (limit - timestamps.len()) as i64;
            let rows =
                statement.query_map(params![run.run, account, before, left], |r| r.get(0))?;
            for row in rows {
                timestamps.push(row?);
            }
        }
        Ok((indexed, timestamps))
    }

    /// The reference's entries, oldest first, at most `limit`, and the watermark.
    pub fn reference_timestamps(
        &self,
        reference: &str,
        limit: usize,
    ) -> Result<(i64, Vec<i64>), StoreError> {
        let snapshot = self.connection.unchecked_transaction()?;
        let indexed = indexed_through(&snapshot)?;
        let mut statement = snapshot.prepare_cached(
            "SELECT timestamp_ns FROM reference_entries WHERE run = ?1 AND reference = ?2 ORDER BY timestamp_ns LIMIT ?3",
        )?;
        let mut timestamps = Vec::new();
        for run in runs(&snapshot, false)? {
            if timestamps.len() >= limit {
                break;
            }
            let left = (limit - timestamps.len()) as i64;
            let rows = statement.query_map(params![run.run, reference, left], |r| r.get(0))?;
            for row in rows {
                timestamps.push(row?);
            }
        }
        Ok((indexed, timestamps))
    }

    /// Each given account's latest entry (accounts without one are left out), and the
    /// watermark.
    pub fn latest(&self, accounts: &[i64]) -> Result<(i64, Vec<(i64, i64)>), StoreError> {
        let snapshot = self.connection.unchecked_transaction()?;
        let indexed = indexed_through(&snapshot)?;
        let runs = runs(&snapshot, true)?;
        let mut statement = snapshot.prepare_cached(
            "SELECT max(timestamp_ns) FROM account_entries WHERE run = ?1 AND account_id = ?2",
        )?;
        let mut latest = Vec::new();
        for &account in accounts {
            for run in &runs {
                let found: Option<i64> =
                    statement.query_row(params![run.run, account], |r| r.get(0))?;
                if let Some(timestamp_ns) = found {
                    latest.push((account, timestamp_ns));
                    break;
                }
            }
        }
        Ok((indexed, latest))
    }

    /// Every account's latest entry, and the watermark: a full scan, for start-up.
    pub fn latest_every(&self) -> Result<(i64, Vec<(i64, i64)>), StoreError> {
        let snapshot = self.connection.unchecked_transaction()?;
        let indexed = indexed_through(&snapshot)?;
        let mut statement = snapshot.prepare(
            "SELECT account_id, max(timestamp_ns) FROM account_entries GROUP BY account_id",
        )?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let latest = rows.collect::<Result<Vec<_>, _>>()?;
        Ok((indexed, latest))
    }

    /// Writes the chunk as a new level-0 run and moves the watermark, in one transaction.
    pub fn add_run(&mut self, chunk: &Chunk) -> Result<(), StoreError> {
        assert!(chunk.first_timestamp_ns <= chunk.last_timestamp_ns);
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let indexed = indexed_through(&tx)?;
        assert!(
            indexed < chunk.first_timestamp_ns,
            "a run must start after the watermark"
        );
        let run = run_next(&tx)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO account_entries (run, account_id, timestamp_ns) VALUES (?1, ?2, ?3)",
            )?;
            for (account, timestamp_ns) in &chunk.accounts {
                insert.execute(params![run, account, timestamp_ns])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO reference_entries (run, reference, timestamp_ns) VALUES (?1, ?2, ?3)",
            )?;
            for (reference, timestamp_ns) in &chunk.references {
                insert.execute(params![run, reference, timestamp_ns])?;
            }
            tx.execute(
                "INSERT INTO runs (run, level, first_timestamp_ns, last_timestamp_ns) VALUES (?1, 0, ?2, ?3)",
                params![run, chunk.first_timestamp_ns, chunk.last_timestamp_ns],
            )?;
            tx.execute(
                "UPDATE indexed_through SET timestamp_ns = ?1 WHERE singleton = 1",
                [chunk.last_timestamp_ns],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Does one bounded step of compaction: continues the merge under way, or starts one
    /// when a level is full, or deletes a slice of merged-away entries. False when there is
    /// nothing to do.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        if self.merge.is_none() {
            self.merge = self.merge_start()?;
        }
        if let Some(mut merge) = self.merge.take() {
            if !self.merge_step(&mut merge)? {
                self.merge = Some(merge);
            }
            return Ok(true);
        }
        self.collect_garbage_step()
    }

    /// Picks the lowest full level below the top. The new run is registered as garbage until
    /// it is swapped in, so a merge cut off by a restart leaves nothing that reads could see.
    fn merge_start(&mut self) -> Result<Option<Merge>, StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let level: Option<i64> = tx
            .query_row(
                "SELECT level FROM runs WHERE level < ?1 GROUP BY level HAVING count(*) >= ?2 ORDER BY level LIMIT 1",
                params![LEVEL_TOP, RUN_FANOUT],
                |r| r.get(0),
            )
            .optional()?;
        let Some(level) = level else {
            return Ok(None);
        };
        let sources: Vec<Run> = {
            let mut statement = tx.prepare_cached(
                "SELECT run, first_timestamp_ns, last_timestamp_ns FROM runs WHERE level = ?1 ORDER BY first_timestamp_ns",
            )?;
            let rows = statement.query_map([level], run_row)?;
            rows.collect::<Result<_, _>>()?
        };
        let run_new = run_next(&tx)?;
        tx.execute("INSERT INTO garbage (run) VALUES (?1)", [run_new])?;
        tx.commit()?;
        let runs: Vec<i64> = sources.iter().map(|r| r.run).collect();
        Ok(Some(Merge {
            sources,
            level_new: level + 1,
            run_new,
            accounts: MergeCursor::new("account_entries", "account_id", &runs),
            references: MergeCursor::new("reference_entries", "reference", &runs),
        }))
    }

    /// Writes the next slice of the merge; true when the merge is finished and swapped in.
    fn merge_step(&mut self, merge: &mut Merge) -> Result<bool, StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut budget = self.step_entries_max;
        budget -= merge.accounts.write(&tx, merge.run_new, budget)?;
        if budget > 0 {
            budget -= merge.references.write(&tx, merge.run_new, budget)?;
        }
        let finished = budget > 0;
        if finished {
            // The swap: after this short transaction reads see the new run instead of its
            // sources, whose entries are deleted later, a slice at a time.
            let (first, last) = (&merge.sources[0], &merge.sources[merge.sources.len() - 1]);
            tx.execute(
                "INSERT INTO runs (run, level, first_timestamp_ns, last_timestamp_ns) VALUES (?1, ?2, ?3, ?4)",
                params![
                    merge.run_new,
                    merge.level_new,
                    first.first_timestamp_ns,
                    last.last_timestamp_ns
                ],
            )?;
            tx.execute("DELETE FROM garbage WHERE run = ?1", [merge.run_new])?;
            for source in &merge.sources {
                tx.execute("DELETE FROM runs WHERE run = ?1", [source.run])?;
                tx.execute("INSERT INTO garbage (run) VALUES (?1)", [source.run])?;
            }
        }
        tx.commit()?;
        Ok(finished)
    }

    /// Deletes a slice of the entries of a run that is no longer read.
    fn collect_garbage_step(&mut self) -> Result<bool, StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let run: Option<i64> = tx
            .query_row("SELECT run FROM garbage ORDER BY run LIMIT 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(run) = run else {
            return Ok(false);
        };
        let limit = self.step_entries_max as i64;
        let mut deleted = tx.execute(
            "DELETE FROM account_entries WHERE run = ?1 AND (account_id, timestamp_ns) IN \
             (SELECT account_id, timestamp_ns FROM account_entries WHERE run = ?1 ORDER BY account_id, timestamp_ns LIMIT ?2)",
            params![run, limit],
        )?;
        if deleted == 0 {
            deleted = tx.execute(
                "DELETE FROM reference_entries WHERE run = ?1 AND (reference, timestamp_ns) IN \
                 (SELECT reference, timestamp_ns FROM reference_entries WHERE run = ?1 ORDER BY reference, timestamp_ns LIMIT ?2)",
                params![run, limit],
            )?;
        }
        if deleted == 0 {
            tx.execute("DELETE FROM garbage WHERE run = ?1", [run])?;
        }
        tx.commit()?;
        Ok(true)
    }
}

impl<K: FromSql + ToSql + Ord + Clone> MergeCursor<K> {
    fn new(table: &'static str, key_column: &'static str, runs: &[i64]) -> MergeCursor<K> {
        let sources = runs
            .iter()
            .map(|&run| SourceCursor {
                run,
                buffer: VecDeque::new(),
                after: None,
                exhausted: false,
            })
            .collect();
        MergeCursor {
            table,
            key_column,
            sources,
        }
    }

    /// Streams up to `budget` entries, smallest first, into `run_new` and returns how many;
    /// fewer than `budget` means this table is done. Memory: one refill per source.
    fn write(
        &mut self,
        tx: &Transaction<'_>,
        run_new: i64,
        budget: usize,
    ) -> Result<usize, StoreError> {
        let refill_len = budget.clamp(1, 4_096);
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO {} (run, {}, timestamp_ns) VALUES (?1, ?2, ?3)",
            self.table, self.key_column
        ))?;
        let mut written = 0;
        while written < budget {
            for source in &mut self.sources {
                if source.buffer.is_empty() && !source.exhausted {
                    source.refill(tx, self.table, self.key_column, refill_len)?;
                }
            }
            let smallest = (0..self.sources.len())
                .filter(|&i| !self.sources[i].buffer.is_empty())
                .min_by(|&a, &b| self.sources[a].buffer[0].cmp(&self.sources[b].buffer[0]));
            let Some(smallest) = smallest else {
                break;
            };
            let (key, timestamp_ns) = self.sources[smallest]
                .buffer
                .pop_front()
                .expect("chosen for not being empty");
            insert.execute(params![run_new, key, timestamp_ns])?;
            written += 1;
        }
        Ok(written)
    }
}

impl<K: FromSql + ToSql + Clone> SourceCursor<K> {
    /// Reads the next `len` entries of this run after the last one read.
    fn refill(
        &mut self,
        tx: &Transaction<'_>,
        table: &str,
        key_column: &str,
        len: usize,
    ) -> Result<(), StoreError> {
        let (after_key, after_timestamp_ns) = match &self.after {
            Some((key, timestamp_ns)) => (Some(key.clone()), *timestamp_ns),
            None => (None, i64::MIN),
        };
        // Row values compare key first, then time: the order of the primary key.
        let mut statement = tx.prepare_cached(&format!(
            "SELECT {key_column}, timestamp_ns FROM {table} WHERE run = ?1 \
             AND (?2 IS NULL OR ({key_column}, timestamp_ns) > (?2, ?3)) \
             ORDER BY {key_column}, timestamp_ns LIMIT ?4"
        ))?;
        let mut rows =
            statement.query(params![self.run, after_key, after_timestamp_ns, len as i64])?;
        while let Some(row) = rows.next()? {
            self.buffer.push_back((row.get(0)?, row.get(1)?));
        }
        self.exhausted = self.buffer.len() < len;
        self.after = self.buffer.back().cloned();
        Ok(())
    }
}

fn indexed_through(connection: &Connection) -> Result<i64, StoreError> {
    let mut statement = connection
        .prepare_cached("SELECT timestamp_ns FROM indexed_through WHERE singleton = 1")?;
    Ok(statement.query_row([], |r| r.get(0))?)
}

fn runs(connection: &Connection, newest_first: bool) -> Result<Vec<Run>, StoreError> {
    let order = if newest_first { "DESC" } else { "ASC" };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT run, first_timestamp_ns, last_timestamp_ns FROM runs ORDER BY first_timestamp_ns {order}"
    ))?;
    let rows = statement.query_map([], run_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        run: r.get(0)?,
        first_timestamp_ns: r.get(1)?,
        last_timestamp_ns: r.get(2)?,
    })
}

/// Above every run, live or garbage, so a new run's entries never mix with old ones.
fn run_next(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection.query_row(
        "SELECT max((SELECT coalesce(max(run), 0) FROM runs), (SELECT coalesce(max(run), 0) FROM garbage)) + 1",
        [],
        |r| r.get(0),
    )?)
}
