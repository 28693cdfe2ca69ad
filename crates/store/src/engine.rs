//! The single writer of a ledger.
//!
//! Callers on any thread or task put requests into a bounded queue (a full queue makes them
//! wait: back-pressure, not unbounded memory). The writer thread takes everything queued, up
//! to a bounded batch, and for that batch:
//! 1. prefetches what it touches: stored transfers for ids that the Bloom filter cannot rule
//!    out, and how pending transfers were resolved (every account is already in memory);
//! 2. voids expired pending transfers, then applies the requests in arrival order;
//! 3. commits the batch in one durable transaction;
//! 4. only then answers each caller.
//!
//! Every account is loaded at start and stays in memory, so a batch never reads an account
//! from disk and a hot account costs what a cold one does. A second thread runs the store's
//! background upkeep (derived indexes) on its own connection. If a commit fails, memory may be ahead of storage: the writer throws its state away and rebuilds
//! it from storage before the next batch, and the callers of the failed batch get an error
//! (nothing of that batch was written).

use crate::filter::IdFilter;
use crate::replier::Replier;
use crate::{Clock, Store, StoreConfig, StoreError, TransferRecord, Upkeep};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use zhifu_ledger::{
    AccountCode, AccountId, BatchOutput, Ledger, NewAccount, NewTransfer, Prior, TransferCode,
    TransferOp,
};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Requests waiting in the queue before submitters wait.
    pub queue_requests_max: usize,
    /// Transfers (and accounts) in one batch, roughly: the writer stops taking requests once
    /// it has this many, so a batch holds at most this plus one request.
    pub batch_items_max: usize,
    /// Transfers or accounts in one request.
    pub request_items_max: usize,
    /// Pending transfers expired per batch; the rest wait for the next one.
    pub expiries_per_batch_max: usize,
    /// How long an idle writer sleeps before it looks for expired pending transfers.
    pub idle_wake_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            queue_requests_max: 16_384,
            batch_items_max: 8_192,
            request_items_max: 8_190,
            expiries_per_batch_max: 1_024,
            idle_wake_ms: 100,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("a request must hold at least one item")]
    RequestEmpty,
    #[error("a request holds {count} items, more than the {max} allowed")]
    RequestTooLarge { count: usize, max: usize },
    #[error("the ledger is stopped")]
    Stopped,
    #[error("the ledger could not write this batch; nothing of it was applied: {0}")]
    Storage(String),
}

impl EngineError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::RequestEmpty => "REQUEST_EMPTY",
            EngineError::RequestTooLarge { .. } => "REQUEST_TOO_LARGE",
            EngineError::Stopped => "LEDGER_STOPPED",
            EngineError::Storage(_) => "LEDGER_STORAGE_FAILED",
        }
    }
}

type Reply<T> = flume::Sender<Result<T, EngineError>>;

enum Command {
    OpenAccounts(Vec<NewAccount>, Reply<Vec<AccountCode>>),
    CreateTransfers(
        Vec<NewTransfer>,
        Vec<TransferRecord>,
        Reply<Vec<TransferCode>>,
    ),
    CloseAccount(AccountId, Reply<AccountCode>),
}

enum Answer {
    Accounts(Vec<AccountCode>),
    Transfers(Vec<TransferCode>),
    Close(AccountCode),
}

impl Command {
    fn items(&self) -> usize {
        match self {
            Command::OpenAccounts(accounts, _) => accounts.len(),
            Command::CreateTransfers(transfers, ..) => transfers.len(),
            Command::CloseAccount(..) => 1,
        }
    }

    /// A caller that gave up waiting is no error of the writer's: its send fails, quietly.
    fn answer(self, answer: Result<Answer, EngineError>) {
        match (self, answer) {
            (Command::OpenAccounts(_, reply), Ok(Answer::Accounts(codes))) => {
                drop(reply.send(Ok(codes)))
            }
            (Command::CreateTransfers(.., reply), Ok(Answer::Transfers(codes))) => {
                drop(reply.send(Ok(codes)))
            }
            (Command::CloseAccount(_, reply), Ok(Answer::Close(code))) => {
                drop(reply.send(Ok(code)))
            }
            (Command::OpenAccounts(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (Command::CreateTransfers(.., reply), Err(e)) => drop(reply.send(Err(e))),
            (Command::CloseAccount(_, reply), Err(e)) => drop(reply.send(Err(e))),
            _ => unreachable!("answer kind matches its command"),
        }
    }
}

/// Counters the writer keeps, for benchmarks and `/metrics`.
#[derive(Default, Debug)]
pub struct EngineStats {
    pub batches: AtomicU64,
    pub transfers: AtomicU64,
    pub commit_failures: AtomicU64,
    /// The longest database commit so far, in microseconds (swap to 0 to measure a window).
    pub commit_us_max: AtomicU64,
    /// The longest whole batch (prefetch, apply, commit, bookkeeping) so far, in microseconds.
    pub batch_us_max: AtomicU64,
}

/// The handle through which everyone writes to one ledger. Dropping it lets the writer finish
/// what is queued, then stops it.
pub struct Engine {
    sender: Option<flume::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    maintainer: Option<JoinHandle<()>>,
    log_keeper: Option<JoinHandle<()>>,
    /// Dropped to stop the upkeep threads at once, even in the middle of a rest.
    upkeep_stop: Option<flume::Sender<()>>,
    request_items_max: usize,
    stats: Arc<EngineStats>,
}

/// How often the log's upkeep runs. A page that many commits touch (an account's, the last
/// page of the transfers) is copied once per checkpoint, so rarer checkpoints copy less: every
/// 10 ms, the two keepers took a tenth of the server's CPU at the maximum payment rate (perf),
/// and payments over 32 connections ran 17–28 % slower than at 100 ms (two runs each,
/// 2026-12-01).
const LOG_UPKEEP_INTERVAL_MS: u64 = 100;
/// How long the upkeep thread rests when it has caught up.
const UPKEEP_IDLE_MS: u64 = 20;
/// How long it rests after an error before it tries again.
const UPKEEP_RETRY_MS: u64 = 1_000;

impl Engine {
    /// Opens the store, recovers the ledger's state from it and starts the writer thread and
    /// the upkeep thread.
    pub fn start(
        store_config: &StoreConfig,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, StoreError> {
        let store = store_config.open()?;
        assert!(
            config.batch_items_max > 0
                && config.request_items_max > 0
                && config.queue_requests_max > 0
        );
        let (sender, receiver) = flume::bounded(config.queue_requests_max);
        let stats = Arc::new(EngineStats::default());
        let mut writer = Writer {
            store,
            clock,
            config: config.clone(),
            ledger: Ledger::new(),
            filter: IdFilter::with_capacity(0),
            receiver,
            prior: Prior::default(),
            out: BatchOutput::default(),
            stats: stats.clone(),
            healthy: false,
            replier: Replier::start("zhifu-ledger-reply")?,
        };
        writer.recover()?;
        let writer = std::thread::Builder::new()
            .name("zhifu-ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        let (upkeep_stop, stopped) = flume::bounded::<()>(1);
        let maintainer = start_upkeep(UpkeepKind::Indexes, store_config.open()?, stopped.clone())?;
        let log_keeper = start_upkeep(UpkeepKind::Log, store_config.open()?, stopped)?;
        Ok(Engine {
            sender: Some(sender),
            writer: Some(writer),
            maintainer,
            log_keeper,
            upkeep_stop: Some(upkeep_stop),
            request_items_max: config.request_items_max,
            stats,
        })
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Applies transfers; one code per transfer, in order. Blocks until they are durable.
    pub fn create_transfers(
        &self,
        transfers: Vec<NewTransfer>,
    ) -> Result<Vec<TransferCode>, EngineError> {
        self.create_transfers_recorded(transfers, Vec::new())
    }

    /// Like [`Engine::create_transfers`], and writes `records` in the same commit if every
    /// transfer is applied now or was before (`ok` or `exists`), else not at all.
    pub fn create_transfers_recorded(
        &self,
        transfers: Vec<NewTransfer>,
        records: Vec<TransferRecord>,
    ) -> Result<Vec<TransferCode>, EngineError> {
        self.check_size(transfers.len())?;
        self.call(|reply| Command::CreateTransfers(transfers, records, reply))
    }

    /// [`Engine::create_transfers_recorded`] for a task.
    pub async fn create_transfers_recorded_async(
        &self,
        transfers: Vec<NewTransfer>,
        records: Vec<TransferRecord>,
    ) -> Result<Vec<TransferCode>, EngineError> {
        self.check_size(transfers.len())?;
        self.call_async(|reply| Command::CreateTransfers(transfers, records, reply))
            .await
    }

    pub async fn create_transfers_async(
        &self,
        transfers: Vec<NewTransfer>,
    ) -> Result<Vec<TransferCode>, EngineError> {
        self.create_transfers_recorded_async(transfers, Vec::new())
            .await
    }

    pub fn open_accounts(
        &self,
        accounts: Vec<NewAccount>,
    ) -> Result<Vec<AccountCode>, EngineError> {
        self.check_size(accounts.len())?;
        self.call(|reply| Command::OpenAccounts(accounts, reply))
    }

    pub async fn open_accounts_async(
        &self,
        accounts: Vec<NewAccount>,
    ) -> Result<Vec<AccountCode>, EngineError> {
        self.check_size(accounts.len())?;
        self.call_async(|reply| Command::OpenAccounts(accounts, reply))
            .await
    }

    /// Closes an account whose balance is zero and that holds nothing pending.
    pub fn close_account(&self, id: AccountId) -> Result<AccountCode, EngineError> {
        self.call(|reply| Command::CloseAccount(id, reply))
    }

    fn check_size(&self, count: usize) -> Result<(), EngineError> {
        match count {
            0 => Err(EngineError::RequestEmpty),
            count if count > self.request_items_max => Err(EngineError::RequestTooLarge {
                count,
                max: self.request_items_max,
            }),
            _ => Ok(()),
        }
    }

    fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, EngineError> {
        let (reply, answer) = flume::bounded(1);
        let sender = self.sender.as_ref().ok_or(EngineError::Stopped)?;
        sender
            .send(command(reply))
            .map_err(|_| EngineError::Stopped)?;
        answer.recv().map_err(|_| EngineError::Stopped)?
    }

    async fn call_async<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (reply, answer) = flume::bounded(1);
        let sender = self.sender.as_ref().ok_or(EngineError::Stopped)?;
        sender
            .send_async(command(reply))
            .await
            .map_err(|_| EngineError::Stopped)?;
        answer
            .recv_async()
            .await
            .map_err(|_| EngineError::Stopped)?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        drop(self.sender.take());
        drop(self.upkeep_stop.take());
        // A thread that panicked already reported it; the process goes on shutting down.
        for thread in [
            self.writer.take(),
            self.maintainer.take(),
            self.log_keeper.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = thread.join();
        }
    }
}

/// Upkeep is deferrable work: at the lowest priority it takes the CPU that payments leave
/// idle, so a burst is not slowed by indexing it (the history catches up after).
fn lower_own_priority() {
    // On Linux a thread is a task: PRIO_PROCESS with id 0 names the calling thread only.
    // SAFETY: setpriority only reads its integer arguments.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, 19) };
    if result != 0 {
        eprintln!(
            "zhifu-ledger: cannot lower the upkeep thread's priority; it runs at normal priority"
        );
    }
}

/// A kind of background work a store may need, each on a thread of its own so that one
/// long step of one never delays the other.
#[derive(Clone, Copy)]
enum UpkeepKind {
    /// Copying the log's write-ahead file back (SQLite's checkpoint): small and frequent, so
    /// that each of its fsyncs is short and the writer's own fsyncs never queue behind a big
    /// one.
    Log,
    /// Building derived indexes: heavy, at idle priority.
    Indexes,
}

impl UpkeepKind {
    fn step(self, store: &mut dyn Store) -> Result<Upkeep, StoreError> {
        match self {
            UpkeepKind::Log => store.maintain_log(),
            UpkeepKind::Indexes => store.maintain(),
        }
    }

    fn rest_ms(self, upkeep: Upkeep) -> u64 {
        match (self, upkeep) {
            (UpkeepKind::Log, _) => LOG_UPKEEP_INTERVAL_MS,
            (UpkeepKind::Indexes, Upkeep::Busy) => 0,
            (UpkeepKind::Indexes, Upkeep::Idle | Upkeep::Never) => UPKEEP_IDLE_MS,
        }
    }
}

/// Rests for `rest_ms` and returns true, or returns false as soon as `stopped`'s sender is
/// dropped (a background thread's stop signal: it never waits out a rest to stop).
pub(crate) fn rest_unless_stopped(stopped: &flume::Receiver<()>, rest_ms: u64) -> bool {
    match stopped.recv_timeout(Duration::from_millis(rest_ms)) {
        Err(flume::RecvTimeoutError::Timeout) => true,
        Ok(()) | Err(flume::RecvTimeoutError::Disconnected) => false,
    }
}

/// Runs one kind of the store's upkeep until the engine stops; no thread for a store that
/// needs none.
fn start_upkeep(
    kind: UpkeepKind,
    mut store: Box<dyn Store>,
    stopped: flume::Receiver<()>,
) -> Result<Option<JoinHandle<()>>, StoreError> {
    if kind.step(store.as_mut())? == Upkeep::Never {
        return Ok(None);
    }
    let name = match kind {
        UpkeepKind::Log => "zhifu-ledger-log",
        UpkeepKind::Indexes => "zhifu-ledger-upkeep",
    };
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let UpkeepKind::Indexes = kind {
                lower_own_priority();
            }
            loop {
                let rest_ms = match kind.step(store.as_mut()) {
                    Ok(upkeep) => kind.rest_ms(upkeep),
                    Err(e) => {
                        eprintln!("zhifu-ledger: {name} failed, retrying: {e}");
                        UPKEEP_RETRY_MS
                    }
                };
                if !rest_unless_stopped(&stopped, rest_ms) {
                    return;
                }
            }
        });
    thread
        .map(Some)
        .map_err(|e| StoreError::Open(format!("cannot start the {name} thread: {e}")))
}

struct Writer {
    store: Box<dyn Store>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    ledger: Ledger,
    filter: IdFilter,
    receiver: flume::Receiver<Command>,
    prior: Prior,
    out: BatchOutput,
    stats: Arc<EngineStats>,
    /// False after a failed commit until the state has been rebuilt from storage.
    healthy: bool,
    /// Answers each durable batch's callers while the next batch runs.
    replier: Replier,
}

impl Writer {
    fn run(mut self) {
        let mut commands: Vec<Command> = Vec::new();
        loop {
            match self.receiver.recv_timeout(self.wait()) {
                Ok(command) => commands.push(command),
                Err(flume::RecvTimeoutError::Timeout) => {}
                // Every queued request was taken before the queue reports disconnection.
                Err(flume::RecvTimeoutError::Disconnected) => return,
            }
            let mut items: usize = commands.iter().map(Command::items).sum();
            while items < self.config.batch_items_max {
                let Ok(command) = self.receiver.try_recv() else {
                    break;
                };
                items += command.items();
                commands.push(command);
            }
            self.run_batch(&mut commands);
            assert!(commands.is_empty());
        }
    }

    /// Until the next expiry, but no longer than the idle wake.
    fn wait(&self) -> Duration {
        let idle = Duration::from_millis(self.config.idle_wake_ms);
        match self.ledger.expiry_next_ns() {
            Some(at) => {
                let until_ns = at.saturating_sub(self.clock.now_ns()).max(0);
                idle.min(Duration::from_nanos(until_ns as u64))
            }
            None => idle,
        }
    }

    fn run_batch(&mut self, commands: &mut Vec<Command>) {
        if !self.healthy
            && let Err(e) = self.recover()
        {
            return fail_all(commands, &e);
        }
        let batch_started = std::time::Instant::now();
        let now_ns = self.clock.now_ns();
        self.prior.clear();
        self.out.clear();
        if let Err(e) = self.prefetch(commands) {
            self.healthy = false;
            return fail_all(commands, &e);
        }
        self.ledger.expire_due(
            now_ns,
            self.config.expiries_per_batch_max,
            &mut self.prior,
            &mut self.out,
        );
        let answers: Vec<Answer> = commands
            .iter()
            .map(|command| self.apply(now_ns, command))
            .collect();
        let records = records_to_write(commands, &answers);
        if !self.out.is_empty() || !records.is_empty() {
            let commit_started = std::time::Instant::now();
            if let Err(e) = self.store.commit(&self.out, &records) {
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                self.healthy = false;
                return fail_all(commands, &e);
            }
            let commit_us = commit_started.elapsed().as_micros() as u64;
            self.stats
                .commit_us_max
                .fetch_max(commit_us, Ordering::Relaxed);
        }
        self.remember_ids();
        let batch_us = batch_started.elapsed().as_micros() as u64;
        self.stats
            .batch_us_max
            .fetch_max(batch_us, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .transfers
            .fetch_add(self.out.transfers.len() as u64, Ordering::Relaxed);
        if commands.is_empty() {
            return;
        }
        let answered: Vec<(Command, Answer)> = commands.drain(..).zip(answers).collect();
        self.replier.reply(Box::new(move || {
            for (command, answer) in answered {
                command.answer(Ok(answer));
            }
        }));
    }

    fn apply(&mut self, now_ns: i64, command: &Command) -> Answer {
        match command {
            Command::OpenAccounts(accounts, _) => {
                Answer::Accounts(self.ledger.open_accounts(accounts, &mut self.out))
            }
            Command::CreateTransfers(transfers, ..) => Answer::Transfers(
                self.ledger
                    .create_transfers(now_ns, transfers, &mut self.prior, &mut self.out),
            ),
            Command::CloseAccount(id, _) => {
                Answer::Close(self.ledger.close_account(*id, &mut self.out))
            }
        }
    }

    /// Loads what the batch needs to know about transfer ids; accounts are all in memory.
    fn prefetch(&mut self, commands: &[Command]) -> Result<(), StoreError> {
        let mut lookup_ids = Vec::new();
        let mut resolution_ids = Vec::new();
        for command in commands {
            let Command::CreateTransfers(transfers, ..) = command else {
                continue;
            };
            for transfer in transfers {
                if self.filter.may_contain(transfer.id) {
                    lookup_ids.push(transfer.id);
                }
                if let TransferOp::PostPending { pending_id, .. }
                | TransferOp::VoidPending { pending_id } = transfer.op
                    && self.ledger.pending_accounts(pending_id).is_none()
                {
                    lookup_ids.push(pending_id);
                    resolution_ids.push(pending_id);
                }
            }
        }
        for ids in [&mut lookup_ids, &mut resolution_ids] {
            ids.sort_unstable();
            ids.dedup();
        }
        self.store.load_known(&lookup_ids, &mut self.prior)?;
        self.store
            .load_resolutions(&resolution_ids, &mut self.prior)
    }

    fn remember_ids(&mut self) {
        for transfer in &self.out.transfers {
            self.filter.insert(transfer.id);
        }
        for rejection in &self.out.rejections {
            self.filter.insert(rejection.request.id);
        }
    }

    fn rebuild_filter(&mut self, capacity: usize) -> Result<(), StoreError> {
        let mut filter = IdFilter::with_capacity(capacity);
        self.store.scan_ids(&mut |id| filter.insert(id))?;
        self.filter = filter;
        Ok(())
    }

    /// Rebuilds memory from storage: at start, and after a failed commit.
    fn recover(&mut self) -> Result<(), StoreError> {
        let mut ledger = Ledger::new();
        let mut accounts = Vec::new();
        self.store
            .scan_accounts(&mut |account| accounts.push(account))?;
        zhifu_ledger::check_conservation(accounts.iter()).map_err(StoreError::Corrupt)?;
        for account in accounts {
            ledger.cache_account(account);
        }
        ledger.observe_timestamp(self.store.timestamp_last_ns()?);
        for pending in self.store.load_pendings_open()? {
            ledger.restore_pending(&pending);
        }
        let ids_count = self.store.scan_ids(&mut |_| {})?;
        self.rebuild_filter(
            usize::try_from(ids_count)
                .unwrap_or(usize::MAX / 4)
                .saturating_mul(2),
        )?;
        self.ledger = ledger;
        self.healthy = true;
        Ok(())
    }
}

/// The records of every request whose transfers all stand (applied now, or before: a retry
/// writes what a crash may have kept an older version from writing; both kinds of record are
/// idempotent).
fn records_to_write<'a>(commands: &'a [Command], answers: &[Answer]) -> Vec<&'a TransferRecord> {
    let mut records = Vec::new();
    for (command, answer) in commands.iter().zip(answers) {
        if let (Command::CreateTransfers(_, recorded, _), Answer::Transfers(codes)) =
            (command, answer)
            && !recorded.is_empty()
            && codes
                .iter()
                .all(|code| matches!(code, TransferCode::Ok | TransferCode::Exists))
        {
            records.extend(recorded);
        }
    }
    records
}

fn fail_all(commands: &mut Vec<Command>, error: &StoreError) {
    let error = EngineError::Storage(error.to_string());
    for command in commands.drain(..) {
        command.answer(Err(error.clone()));
    }
}
