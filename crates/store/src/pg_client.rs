//! A PostgreSQL connection that prepares each statement once.
//!
//! `postgres::Client` given SQL text prepares it anew on every call: a round trip and a parse
//! before the query's own round trip. The wallet's queries are a few dozen fixed texts run on
//! every payment, so each connection keeps them prepared, by text.

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};
use std::collections::HashMap;

/// Statements kept per connection; the wallet has fewer. Past it, texts are prepared each time
/// (a query built at run time must not grow the cache without bound).
const STATEMENTS_MAX: usize = 256;

pub struct CachedClient {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl CachedClient {
    pub fn new(client: Client) -> CachedClient {
        CachedClient {
            client,
            statements: HashMap::new(),
        }
    }

    /// The connection itself, for what is not a single statement (transactions, scripts).
    pub fn raw(&mut self) -> &mut Client {
        &mut self.client
    }

    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        if self.statements.len() < STATEMENTS_MAX {
            self.statements.insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }

    pub fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params)
    }

    pub fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_one(&statement, params)
    }

    pub fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_opt(&statement, params)
    }

    pub fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params)
    }

    pub fn batch_execute(&mut self, script: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(script)
    }
}
