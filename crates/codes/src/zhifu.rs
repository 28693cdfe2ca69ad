//! zhifu's own merchant account template, and aggregated codes.
//!
//! zhifu puts its account in one template slot of 26–51, like any network:
//!
//! | Sub-ID | Value | |
//! |---|---|---|
//! | 00 | the institution's GUID, a reverse domain such as `cn.zhifu` | always |
//! | 01 | the target: `M` and a merchant id, or `P` and a person id (`M10023`, `P88`) | always |
//! | 02 | the order reference | dynamic codes only |
//!
//! The GUID is per institution (each one running zhifu picks its own), so one wallet can tell
//! its institution's codes from another's. The kind of target is one letter in 01 rather than a
//! sub-ID per kind so that a code always has exactly one target. Sub-IDs 03–99 are left for
//! later versions; a reader ignores those it does not know.
//!
//! An **aggregated code** (一码通) carries several networks' accounts in one payload: zhifu's
//! template, other institutions' templates, a card network's primitive value (UnionPay in 15).
//! Build one with [`Payload::add_zhifu`], [`Payload::add_template`] and
//! [`Payload::add_network`]; a scanning wallet finds the part it understands with
//! [`Payload::accounts_for`] or [`Payload::zhifu_accounts`].

use crate::error::{ModelError, ValueError};
use crate::model::{Entry, Payload, Template};
use crate::value::{DataObjectId, Guid, Text};

/// The GUID zhifu's own deployment uses. Another institution configures its own.
pub const ZHIFU_GUID: &str = "cn.zhifu";

/// A merchant or person id in zhifu's template.
pub type TargetId = Text<32>;
/// The order a dynamic code pays.
pub type OrderReference = Text<32>;

const TARGET_ID: u8 = 1;
const ORDER_REFERENCE_ID: u8 = 2;

/// zhifu's account in a code: who is paid, and for a dynamic code which order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ZhifuAccount {
    pub guid: Guid,
    pub target: Target,
    pub order_reference: Option<OrderReference>,
}

/// Who a zhifu code pays.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Target {
    Merchant(TargetId),
    /// A person's receive-money code (收款码).
    Person(TargetId),
}

impl ZhifuAccount {
    /// The template this account is encoded as. With a long GUID, id and reference it can
    /// pass 99 characters, which [`encode`](crate::encode) then reports.
    pub fn template(&self) -> Template {
        let (kind, id) = match &self.target {
            Target::Merchant(id) => ('M', id),
            Target::Person(id) => ('P', id),
        };
        // A letter and 1 to 32 printable characters, or a reference of 1 to 32: valid values.
        let target = Text::trusted(format!("{kind}{id}"));
        let mut entries = vec![Entry {
            id: DataObjectId::known(TARGET_ID),
            value: target,
        }];
        if let Some(reference) = &self.order_reference {
            let value = Text::trusted(reference.as_str().to_owned());
            entries.push(Entry {
                id: DataObjectId::known(ORDER_REFERENCE_ID),
                value,
            });
        }
        Template {
            guid: self.guid.clone(),
            entries,
        }
    }

    /// Reads a template written by [`template`](ZhifuAccount::template). The GUID is taken
    /// as found: compare it first ([`Template::is_for`]).
    pub fn from_template(template: &Template) -> Result<ZhifuAccount, ValueError> {
        const TARGET: &str = "a target in 01: M or P, then an id of 1 to 32 characters";
        let malformed = ValueError::Malformed { expected: TARGET };
        let target = template.get(TARGET_ID).ok_or(malformed)?.as_str();
        let target = match target.split_at_checked(1) {
            Some(("M", id)) => Target::Merchant(TargetId::parse(id).map_err(|_| malformed)?),
            Some(("P", id)) => Target::Person(TargetId::parse(id).map_err(|_| malformed)?),
            _ => return Err(malformed),
        };
        const REFERENCE: &str = "an order reference in 02 of 1 to 32 characters";
        let order_reference =
            match template.get(ORDER_REFERENCE_ID) {
                Some(value) => Some(OrderReference::parse(value.as_str()).map_err(|_| {
                    ValueError::Malformed {
                        expected: REFERENCE,
                    }
                })?),
                None => None,
            };
        Ok(ZhifuAccount {
            guid: template.guid.clone(),
            target,
            order_reference,
        })
    }
}

impl Payload {
    /// Adds zhifu's template in the lowest free ID of 26–51 and returns that ID.
    pub fn add_zhifu(&mut self, account: &ZhifuAccount) -> Result<DataObjectId, ModelError> {
        self.add_template(account.template())
    }

    /// The zhifu accounts under `guid` in this code, in ID order. A template with that GUID
    /// that is not a valid zhifu template is an error: the code claims to be ours but is not.
    pub fn zhifu_accounts(&self, guid: &str) -> Result<Vec<ZhifuAccount>, ModelError> {
        self.accounts_for(guid)
            .map(|(id, template)| {
                ZhifuAccount::from_template(template).map_err(|error| {
                    ModelError::new(id.to_string(), format!("zhifu's template {error}"))
                })
            })
            .collect()
    }
}
