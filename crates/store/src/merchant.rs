//! Merchant acquiring's records (SPEC §5), beside the wallet's and reached through the same
//! [`crate::WalletDb`]: [`MerchantStore`] is a supertrait of [`crate::WalletStore`].
//!
//! - merchants: direct merchants, service providers (a merchant row of kind
//!   `service_provider`) and their sub-merchants, with the discount rate and `notify_url`;
//! - their API public keys by serial (several active at once, for rotation; revoked ones
//!   are kept, so that a serial always names one key);
//! - the nonces of accepted signed requests, remembered for as long as a request carrying
//!   them could still be accepted, then purged.
//!
//! The rules (who may onboard whom, which keys are acceptable, how requests are verified) live
//! in `zhifu-domain`; these are plain reads and writes.

use crate::wallet::{PostgresWalletStore, SqliteWalletStore};
use crate::{PAGE_LEN_MAX, StoreError};
use rusqlite::{OptionalExtension, params};
use std::fmt;

/// A merchant to create.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewMerchant {
    pub name: String,
    /// `merchant` or `service_provider`.
    pub kind: String,
    /// The provider that onboarded this sub-merchant (itself of kind `service_provider`).
    pub service_provider_id: Option<i64>,
    /// 60 is 0.6 %.
    pub discount_rate_bps: u32,
    pub notify_url: Option<String>,
    pub created_ms: i64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MerchantRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub service_provider_id: Option<i64>,
    pub discount_rate_bps: u32,
    pub notify_url: Option<String>,
    pub created_ms: i64,
}

/// A merchant's API public key. `Debug` leaves the key out: keys and signatures stay out of
/// logs, public or not, so that nobody has to judge which is which.
#[derive(Clone, PartialEq, Eq)]
pub struct MerchantKeyRow {
    pub merchant_id: i64,
    pub serial: String,
    /// `RSA-SHA256` or `Ed25519`.
    pub algorithm: String,
    /// SubjectPublicKeyInfo, PEM.
    pub public_key_pem: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl fmt::Debug for MerchantKeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantKeyRow")
            .field("merchant_id", &self.merchant_id)
            .field("serial", &self.serial)
            .field("algorithm", &self.algorithm)
            .field(
                "public_key_pem",
                &format_args!("<{} bytes>", self.public_key_pem.len()),
            )
            .field("created_ms", &self.created_ms)
            .field("revoked_ms", &self.revoked_ms)
            .finish()
    }
}

/// What merchant acquiring keeps outside the ledger.
pub trait MerchantStore {
    /// The new merchant's id.
    fn merchant_insert(&mut self, merchant: &NewMerchant) -> Result<i64, StoreError>;
    fn merchant(&mut self, id: i64) -> Result<Option<MerchantRow>, StoreError>;
    /// The provider's sub-merchants with ids above `after_id`, by id, at most `limit`.
    fn sub_merchants(
        &mut self,
        provider_id: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<MerchantRow>, StoreError>;
    /// False when the merchant has a key of this serial already (revoked or not).
    fn merchant_key_insert(&mut self, key: &MerchantKeyRow) -> Result<bool, StoreError>;
    /// The key of this serial, revoked or not.
    fn merchant_key(
        &mut self,
        merchant_id: i64,
        serial: &str,
    ) -> Result<Option<MerchantKeyRow>, StoreError>;
    /// The merchant's keys not revoked, oldest first.
    fn merchant_keys_active(&mut self, merchant_id: i64)
    -> Result<Vec<MerchantKeyRow>, StoreError>;
    /// False when the merchant has no active key of this serial.
    fn merchant_key_revoke(
        &mut self,
        merchant_id: i64,
        serial: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Records a request's nonce; false when the merchant's nonce was seen already (nothing
    /// is written then). Check and record are one statement.
    fn merchant_nonce_record(
        &mut self,
        merchant_id: i64,
        nonce: &str,
        seen_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Forgets the nonces seen before `seen_ms_min`; returns how many.
    fn merchant_nonces_purge(&mut self, seen_ms_min: i64) -> Result<u64, StoreError>;
}

const MERCHANT_COLUMNS: &str =
    "id, name, kind, service_provider_id, discount_rate_bps, notify_url, created_ms";
const KEY_COLUMNS: &str = "merchant_id, serial, algorithm, public_key_pem, created_ms, revoked_ms";

fn merchant_row_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<MerchantRow> {
    Ok(MerchantRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        service_provider_id: r.get(3)?,
        discount_rate_bps: r.get(4)?,
        notify_url: r.get(5)?,
        created_ms: r.get(6)?,
    })
}

fn key_row_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<MerchantKeyRow> {
    Ok(MerchantKeyRow {
        merchant_id: r.get(0)?,
        serial: r.get(1)?,
        algorithm: r.get(2)?,
        public_key_pem: r.get(3)?,
        created_ms: r.get(4)?,
        revoked_ms: r.get(5)?,
    })
}

impl MerchantStore for SqliteWalletStore {
    fn merchant_insert(&mut self, merchant: &NewMerchant) -> Result<i64, StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "INSERT INTO merchants (name, kind, service_provider_id, discount_rate_bps, \
                 notify_url, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            )?
            .query_row(
                params![
                    merchant.name,
                    merchant.kind,
                    merchant.service_provider_id,
                    merchant.discount_rate_bps,
                    merchant.notify_url,
                    merchant.created_ms
                ],
                |r| r.get(0),
            )?)
    }

    fn merchant(&mut self, id: i64) -> Result<Option<MerchantRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = ?1"
            ))?
            .query_row([id], merchant_row_sqlite)
            .optional()?)
    }

    fn sub_merchants(
        &mut self,
        provider_id: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<MerchantRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self
            .connection
            .prepare_cached(&format!(
                "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE service_provider_id = ?1 \
                 AND id > ?2 ORDER BY id LIMIT ?3"
            ))?
            .query_map(params![provider_id, after_id, limit], merchant_row_sqlite)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn merchant_key_insert(&mut self, key: &MerchantKeyRow) -> Result<bool, StoreError> {
        let inserted = self
            .connection
            .prepare_cached(&format!(
                "INSERT INTO merchant_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (merchant_id, serial) DO NOTHING"
            ))?
            .execute(params![
                key.merchant_id,
                key.serial,
                key.algorithm,
                key.public_key_pem,
                key.created_ms,
                key.revoked_ms
            ])?;
        Ok(inserted > 0)
    }

    fn merchant_key(
        &mut self,
        merchant_id: i64,
        serial: &str,
    ) -> Result<Option<MerchantKeyRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM merchant_keys WHERE merchant_id = ?1 AND serial = ?2"
            ))?
            .query_row(params![merchant_id, serial], key_row_sqlite)
            .optional()?)
    }

    fn merchant_keys_active(
        &mut self,
        merchant_id: i64,
    ) -> Result<Vec<MerchantKeyRow>, StoreError> {
        let rows = self
            .connection
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM merchant_keys WHERE merchant_id = ?1 \
                 AND revoked_ms IS NULL ORDER BY created_ms, serial LIMIT ?2"
            ))?
            .query_map(params![merchant_id, PAGE_LEN_MAX as i64], key_row_sqlite)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn merchant_key_revoke(
        &mut self,
        merchant_id: i64,
        serial: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE merchant_keys SET revoked_ms = ?3 \
                 WHERE merchant_id = ?1 AND serial = ?2 AND revoked_ms IS NULL",
            )?
            .execute(params![merchant_id, serial, now_ms])?;
        Ok(changed > 0)
    }

    fn merchant_nonce_record(
        &mut self,
        merchant_id: i64,
        nonce: &str,
        seen_ms: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .connection
            .prepare_cached(
                "INSERT INTO merchant_nonces (merchant_id, nonce, seen_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (merchant_id, nonce) DO NOTHING",
            )?
            .execute(params![merchant_id, nonce, seen_ms])?;
        Ok(inserted > 0)
    }

    fn merchant_nonces_purge(&mut self, seen_ms_min: i64) -> Result<u64, StoreError> {
        let deleted = self
            .connection
            .prepare_cached("DELETE FROM merchant_nonces WHERE seen_ms < ?1")?
            .execute([seen_ms_min])?;
        Ok(deleted as u64)
    }
}

fn merchant_row_postgres(r: &postgres::Row) -> Result<MerchantRow, StoreError> {
    Ok(MerchantRow {
        id: r.get(0),
        name: r.get(1),
        kind: r.get(2),
        service_provider_id: r.get(3),
        discount_rate_bps: u32::try_from(r.get::<_, i64>(4))
            .map_err(|_| StoreError::Corrupt("a discount rate out of range".into()))?,
        notify_url: r.get(5),
        created_ms: r.get(6),
    })
}

fn key_row_postgres(r: &postgres::Row) -> MerchantKeyRow {
    MerchantKeyRow {
        merchant_id: r.get(0),
        serial: r.get(1),
        algorithm: r.get(2),
        public_key_pem: r.get(3),
        created_ms: r.get(4),
        revoked_ms: r.get(5),
    }
}

impl MerchantStore for PostgresWalletStore {
    fn merchant_insert(&mut self, merchant: &NewMerchant) -> Result<i64, StoreError> {
        let row = self.client.query_one(
            "INSERT INTO merchants (name, kind, service_provider_id, discount_rate_bps, \
             notify_url, created_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &merchant.name,
                &merchant.kind,
                &merchant.service_provider_id,
                &i64::from(merchant.discount_rate_bps),
                &merchant.notify_url,
                &merchant.created_ms,
            ],
        )?;
        Ok(row.get(0))
    }

    fn merchant(&mut self, id: i64) -> Result<Option<MerchantRow>, StoreError> {
        let row = self.client.query_opt(
            &format!("SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1"),
            &[&id],
        )?;
        row.as_ref().map(merchant_row_postgres).transpose()
    }

    fn sub_merchants(
        &mut self,
        provider_id: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<MerchantRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE service_provider_id = $1 \
                 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&provider_id, &after_id, &limit],
        )?;
        rows.iter().map(merchant_row_postgres).collect()
    }

    fn merchant_key_insert(&mut self, key: &MerchantKeyRow) -> Result<bool, StoreError> {
        let inserted = self.client.execute(
            &format!(
                "INSERT INTO merchant_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (merchant_id, serial) DO NOTHING"
            ),
            &[
                &key.merchant_id,
                &key.serial,
                &key.algorithm,
                &key.public_key_pem,
                &key.created_ms,
                &key.revoked_ms,
            ],
        )?;
        Ok(inserted > 0)
    }

    fn merchant_key(
        &mut self,
        merchant_id: i64,
        serial: &str,
    ) -> Result<Option<MerchantKeyRow>, StoreError> {
        let row = self.client.query_opt(
            &format!(
                "SELECT {KEY_COLUMNS} FROM merchant_keys WHERE merchant_id = $1 AND serial = $2"
            ),
            &[&merchant_id, &serial],
        )?;
        Ok(row.as_ref().map(key_row_postgres))
    }

    fn merchant_keys_active(
        &mut self,
        merchant_id: i64,
    ) -> Result<Vec<MerchantKeyRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM merchant_keys WHERE merchant_id = $1 \
                 AND revoked_ms IS NULL ORDER BY created_ms, serial LIMIT $2"
            ),
            &[&merchant_id, &(PAGE_LEN_MAX as i64)],
        )?;
        Ok(rows.iter().map(key_row_postgres).collect())
    }

    fn merchant_key_revoke(
        &mut self,
        merchant_id: i64,
        serial: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE merchant_keys SET revoked_ms = $3 \
             WHERE merchant_id = $1 AND serial = $2 AND revoked_ms IS NULL",
            &[&merchant_id, &serial, &now_ms],
        )?;
        Ok(changed > 0)
    }

    fn merchant_nonce_record(
        &mut self,
        merchant_id: i64,
        nonce: &str,
        seen_ms: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self.client.execute(
            "INSERT INTO merchant_nonces (merchant_id, nonce, seen_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (merchant_id, nonce) DO NOTHING",
            &[&merchant_id, &nonce, &seen_ms],
        )?;
        Ok(inserted > 0)
    }

    fn merchant_nonces_purge(&mut self, seen_ms_min: i64) -> Result<u64, StoreError> {
        Ok(self.client.execute(
            "DELETE FROM merchant_nonces WHERE seen_ms < $1",
            &[&seen_ms_min],
        )?)
    }
}
