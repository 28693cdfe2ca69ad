//! The wallet's records for many threads at once: a few read connections, and one writer that
//! commits whatever writes are queued in one transaction (group commit), as the ledger's engine
//! does for transfers.
//!
//! Why: every payment writes a small wallet row (a transfer, a red packet share). With one
//! connection per write, each payment would wait for its own fsync and payments would queue
//! behind one another; batched, a thousand rows cost one fsync.
//!
//! Each write is a job that runs inside the batch's transaction under its own savepoint (on
//! SQLite a job of one statement needs none, see [`WalletDb::write_statement_quiet`]): a job
//! that fails is rolled back alone and its caller gets the error; the others commit. A caller
//! is answered only after the batch is durable.
//!
//! Callers may keep what they read in memory (sessions, PIN rows, spending): [`WalletDb::generation`]
//! tells them when to stop trusting it. Every write moves it on once durable, except the ones
//! written with [`WalletDb::write_quiet`], whose callers keep their caches true themselves. So
//! a write that nobody thought about empties every cache: a cache can be slow, never wrong.

use crate::{StoreConfig, StoreError, WalletStore};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// How the writer brackets a batch and each job in it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BatchStep {
    Begin,
    JobStart,
    JobKeep,
    JobUndo,
    Commit,
    Rollback,
}

/// Writes waiting for the writer before callers wait (back-pressure).
const QUEUE_JOBS_MAX: usize = 16_384;
/// Jobs in one transaction.
const BATCH_JOBS_MAX: usize = 1_024;
/// How often the log keeper checkpoints: as often as the ledger's (see its
/// `LOG_UPKEEP_INTERVAL_MS` for why not more often).
const LOG_KEEPING_INTERVAL_MS: u64 = 100;
/// How long it rests after a failed checkpoint.
const LOG_KEEPING_RETRY_MS: u64 = 1_000;

/// What a job gives back once it ran: whether to keep its writes, and how to answer its
/// caller once the batch's fate is known.
type Delivery = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Work = Box<dyn FnOnce(&mut dyn WalletStore) -> (bool, Delivery) + Send>;

struct Job {
    work: Work,
    kind: JobKind,
}

/// What the writer may assume about a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum JobKind {
    /// Any write: the generation moves on once it is durable.
    Write,
    /// Written with [`WalletDb::write_quiet`]: the generation stays.
    Quiet,
    /// Written with [`WalletDb::write_statement_quiet`]: quiet, and one statement, which on
    /// SQLite needs no savepoint of its own (two statements fewer for the writer to run).
    QuietStatement,
}

impl JobKind {
    fn quiet(self) -> bool {
        self != JobKind::Write
    }

    fn one_statement(self) -> bool {
        self == JobKind::QuietStatement
    }
}

pub struct WalletDb {
    readers: Vec<Mutex<Box<dyn WalletStore>>>,
    next_reader: AtomicUsize,
    jobs: Option<flume::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    log_keeper: Option<JoinHandle<()>>,
    /// Dropped to stop the log keeper.
    keeper_stop: Option<flume::Sender<()>>,
    /// Moves on after each durable batch that held a write other than a quiet one.
    generation: Arc<AtomicU64>,
}

impl WalletDb {
    /// Opens `readers_len` read connections and the writer's connection.
    pub fn open(config: &StoreConfig, readers_len: usize) -> Result<WalletDb, StoreError> {
        assert!(readers_len > 0);
        let writer_store = config.open_wallet_writer()?;
        let readers = (0..readers_len)
            .map(|_| config.open_wallet().map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let keeper_connection = crate::wallet::wallet_log_keeper(config)?;
        let (jobs, queue) = flume::bounded::<Job>(QUEUE_JOBS_MAX);
        let generation = Arc::new(AtomicU64::new(0));
        let writer_generation = generation.clone();
        let replier = crate::replier::Replier::start("zhifu-wallet-reply")?;
        let writer = std::thread::Builder::new()
            .name("zhifu-wallet-writer".into())
            .spawn(move || write_batches(writer_store, &queue, &writer_generation, &replier))
            .map_err(|e| StoreError::Open(format!("cannot start the wallet writer: {e}")))?;
        // Dropping the sender stops the keeper at once, even in the middle of a rest.
        let (keeper_stop, keeper_stopped) = flume::bounded::<()>(1);
        let log_keeper = match keeper_connection {
            Some(connection) => Some(
                std::thread::Builder::new()
                    .name("zhifu-wallet-log".into())
                    .spawn(move || keep_log(&connection, &keeper_stopped))
                    .map_err(|e| {
                        StoreError::Open(format!("cannot start the wallet log keeper: {e}"))
                    })?,
            ),
            None => None,
        };
        Ok(WalletDb {
            readers,
            next_reader: AtomicUsize::new(0),
            jobs: Some(jobs),
            writer: Some(writer),
            log_keeper,
            keeper_stop: Some(keeper_stop),
            generation,
        })
    }

    /// How many times the records may have changed under a cache. Read it before reading
    /// what is cached: if it moved on since, the cached copy may be stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Moves the generation on for a durable write to what the wallet reads that did not go
    /// through this writer: the ledger's writer commits the transfers between people
    /// ([`crate::TransferRecord`]). Call it once that commit has returned.
    pub fn note_written_elsewhere(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Runs `f` on a read connection: it sees every write that was answered before.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A free connection if there is one, else wait for the next in turn.
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for offset in 0..self.readers.len() {
            let index = (start + offset) % self.readers.len();
            if let Ok(mut reader) = self.readers[index].try_lock() {
                return f(reader.as_mut());
            }
        }
        let index = start % self.readers.len();
        let mut reader = self.readers[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(reader.as_mut())
    }

    /// Runs `f` in the writer's next batch and returns once that batch is durable. An error
    /// from `f`, `Err` or `Ok(Err)`, undoes what `f` wrote and nothing else.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<Result<T, E>, StoreError> + Send + 'static,
    ) -> Result<Result<T, E>, StoreError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        self.submit(JobKind::Write, f)
    }

    /// Like [`WalletDb::write`], without moving the generation on: only for a write that
    /// cannot make any cached read wrong, or whose caller updates the caches it affects itself,
    /// under the lock that every reader filling those caches holds too.
    pub fn write_quiet<T, E>(
        &self,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<Result<T, E>, StoreError> + Send + 'static,
    ) -> Result<Result<T, E>, StoreError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        self.submit(JobKind::Quiet, f)
    }

    fn submit<T, E>(
        &self,
        kind: JobKind,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<Result<T, E>, StoreError> + Send + 'static,
    ) -> Result<Result<T, E>, StoreError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (reply, answer) = flume::bounded(1);
        let work: Work = Box::new(move |store| {
            let outcome = f(store);
            let keep = matches!(outcome, Ok(Ok(_)));
            let delivery: Delivery = Box::new(move |committed| {
                let _ = reply.send(committed.and(outcome));
            });
            (keep, delivery)
        });
        self.jobs
            .as_ref()
            .expect("open until dropped")
            .send(Job { work, kind })
            .map_err(|_| StoreError::Open("the wallet writer has stopped".into()))?;
        answer.recv().map_err(|_| {
            StoreError::Open("the wallet writer stopped or could not begin a batch".into())
        })?
    }

    /// Like [`WalletDb::write`] for a write that cannot be refused but by the store.
    pub fn write_plain<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit_plain(JobKind::Write, f)
    }

    /// [`WalletDb::write_plain`], quietly: see [`WalletDb::write_quiet`] for when that is right.
    pub fn write_plain_quiet<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit_plain(JobKind::Quiet, f)
    }

    /// [`WalletDb::write_plain_quiet`] for `f` that runs exactly one SQL statement, and errs
    /// only when that statement failed: where it runs without a savepoint, an error after a
    /// statement that changed rows would undo nothing, and neither would a second statement.
    pub fn write_statement_quiet<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit_plain(JobKind::QuietStatement, f)
    }

    fn submit_plain<T: Send + 'static>(
        &self,
        kind: JobKind,
        f: impl FnOnce(&mut dyn WalletStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit(kind, move |store| {
            f(store).map(Ok::<T, std::convert::Infallible>)
        })
        .map(|outcome| match outcome {
            Ok(value) => value,
        })
    }
}

impl Drop for WalletDb {
    /// Finishes what is queued, then stops the writer.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.keeper_stop = None;
        if let Some(keeper) = self.log_keeper.take() {
            let _ = keeper.join();
        }
    }
}

/// Checkpoints the wallet's log every 100 milliseconds until the store stops, so that each
/// checkpoint (and its fsync) is small and none of them runs inside a commit that callers
/// wait for.
fn keep_log(connection: &rusqlite::Connection, stopped: &flume::Receiver<()>) {
    loop {
        let rest_ms = match crate::sqlite::checkpoint_beside_writer(connection) {
            Ok(()) => LOG_KEEPING_INTERVAL_MS,
            Err(e) => {
                eprintln!("zhifu-wallet: checkpoint failed, retrying: {e}");
                LOG_KEEPING_RETRY_MS
            }
        };
        if !crate::engine::rest_unless_stopped(stopped, rest_ms) {
            return;
        }
    }
}

fn write_batches(
    mut store: Box<dyn WalletStore>,
    queue: &flume::Receiver<Job>,
    generation: &AtomicU64,
    replier: &crate::replier::Replier,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH_JOBS_MAX);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < BATCH_JOBS_MAX {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let all_quiet = batch.iter().all(|job| job.kind.quiet());
        let deliveries = run_batch(store.as_mut(), &mut batch);
        let committed = store.batch_step(BatchStep::Commit);
        if committed.is_err() {
            let _ = store.batch_step(BatchStep::Rollback);
        }
        // After the commit, so that a reader who saw the old generation cannot have read the
        // new records; before the answers, so that a caller who was answered sees it moved.
        if !all_quiet || committed.is_err() {
            generation.fetch_add(1, Ordering::SeqCst);
        }
        replier.reply(Box::new(move || {
            for delivery in deliveries {
                delivery(clone_outcome(&committed));
            }
        }));
    }
}

/// Runs each job under its own savepoint (but a job of one statement on a store where it undoes
/// itself when it fails). A job that cannot start is dropped unrun, which
/// answers its caller with an error; a savepoint that cannot be closed leaves the transaction
/// unusable, so the commit fails and every job of the batch is told so.
fn run_batch(store: &mut dyn WalletStore, batch: &mut Vec<Job>) -> Vec<Delivery> {
    let mut deliveries = Vec::with_capacity(batch.len());
    let began = store.batch_step(BatchStep::Begin).is_ok();
    let statement_undoes_itself = store.statement_undoes_itself();
    for job in batch.drain(..) {
        // One statement that fails has undone itself where the store says so: nothing for a
        // savepoint to do.
        let bracketed = !(job.kind.one_statement() && statement_undoes_itself);
        if !began || (bracketed && store.batch_step(BatchStep::JobStart).is_err()) {
            continue;
        }
        let (keep, delivery) = (job.work)(store);
        deliveries.push(delivery);
        // A failure that ended the whole transaction (SQLite may roll it all back on a full
        // disk or an I/O error) must not let the next jobs commit one by one outside it: they
        // are dropped unrun (their callers get an error) and the commit fails for the rest.
        if !store.in_transaction() {
            break;
        }
        if bracketed {
            let step = if keep {
                BatchStep::JobKeep
            } else {
                BatchStep::JobUndo
            };
            let _ = store.batch_step(step);
        }
    }
    deliveries
}

fn clone_outcome(outcome: &Result<(), StoreError>) -> Result<(), StoreError> {
    match outcome {
        Ok(()) => Ok(()),
        Err(e) => Err(StoreError::Open(format!("the wallet batch failed: {e}"))),
    }
}
