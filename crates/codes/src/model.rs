//! The typed model of a merchant-presented payload: [`Payload`] and its parts.
//!
//! The payload format indicator (00) is always `01` and the CRC (63) is computed, so neither
//! is stored. Lists ([`Payload::merchant_accounts`], template entries, RFU objects) come sorted
//! by ID from the decoder, whatever the payload's order, so that payloads that differ only in
//! order decode equal; encoding sorts them too, as canonical order requires.

use crate::error::{ModelError, ValueError};
use crate::value::{
    Amount, ConsumerDataRequest, CountryCode, CurrencyCode, DataObjectId, Guid, Label,
    LanguageCode, MerchantCategoryCode, MerchantCity, MerchantName, Percentage, PostalCode, Value,
};

/// The only payload format indicator (00) EMV defines.
pub const PAYLOAD_FORMAT_INDICATOR: &str = "01";

/// A decoded, or to-be-encoded, merchant-presented payload.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Payload {
    /// 01: absent means the wallet cannot tell (treat as static).
    pub initiation: Option<Initiation>,
    /// 02–51: at least one, by ID. Several make an aggregated code, payable by any wallet
    /// that understands one of them.
    pub merchant_accounts: Vec<MerchantAccount>,
    /// 52.
    pub merchant_category: MerchantCategoryCode,
    /// 53.
    pub currency: CurrencyCode,
    /// 54: absent means the payer keys in the amount.
    pub amount: Option<Amount>,
    /// 55, with 56 or 57.
    pub tip: Option<Tip>,
    /// 58.
    pub country: CountryCode,
    /// 59.
    pub merchant_name: MerchantName,
    /// 60.
    pub merchant_city: MerchantCity,
    /// 61.
    pub postal_code: Option<PostalCode>,
    /// 62.
    pub additional_data: Option<AdditionalData>,
    /// 64.
    pub language: Option<LanguageTemplate>,
    /// 65–79, reserved for future EMVCo use: kept as they came.
    pub rfu: Vec<Entry>,
    /// 80–99.
    pub unreserved: Vec<UnreservedTemplate>,
}

/// Point of initiation (01).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Initiation {
    /// `11`: the same code for every payment (a sticker at the till).
    Static,
    /// `12`: a code for one payment (shown by the till, usually with an amount).
    Dynamic,
}

impl Initiation {
    pub fn parse(text: &str) -> Result<Initiation, ValueError> {
        match text {
            "11" => Ok(Initiation::Static),
            "12" => Ok(Initiation::Dynamic),
            _ => Err(ValueError::Malformed {
                expected: "11 (static) or 12 (dynamic)",
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Initiation::Static => "11",
            Initiation::Dynamic => "12",
        }
    }
}

/// Merchant account information: how one network identifies the merchant.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MerchantAccount {
    /// 02–25: a primitive value assigned by a card network (02–03 Visa, 04–05 Mastercard,
    /// 15–16 UnionPay, …), kept as text.
    Network { id: DataObjectId, value: Value },
    /// 26–51: a template, its network named by the GUID in sub-ID 00.
    Template {
        id: DataObjectId,
        template: Template,
    },
}

impl MerchantAccount {
    pub fn id(&self) -> DataObjectId {
        match self {
            MerchantAccount::Network { id, .. } | MerchantAccount::Template { id, .. } => *id,
        }
    }

    pub fn template(&self) -> Option<&Template> {
        match self {
            MerchantAccount::Network { .. } => None,
            MerchantAccount::Template { template, .. } => Some(template),
        }
    }
}

/// A template of 26–51 or 80–99: a globally unique identifier (sub-ID 00) that says whose
/// template it is, then that network's own sub-objects (01–99).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Template {
    pub guid: Guid,
    pub entries: Vec<Entry>,
}

impl Template {
    pub fn new(guid: Guid) -> Template {
        Template {
            guid,
            entries: Vec::new(),
        }
    }

    /// The value of sub-ID `id`, if present.
    pub fn get(&self, id: u8) -> Option<&Value> {
        self.entries
            .iter()
            .find(|entry| entry.id.get() == id)
            .map(|entry| &entry.value)
    }

    /// Whether this template belongs to the network `guid`. GUIDs compare ignoring ASCII case:
    /// reverse domains are case-insensitive and AIDs are hex.
    pub fn is_for(&self, guid: &str) -> bool {
        self.guid.as_str().eq_ignore_ascii_case(guid)
    }
}

/// One primitive object: an ID and its text.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    pub id: DataObjectId,
    pub value: Value,
}

/// A template in 80–99.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnreservedTemplate {
    pub id: DataObjectId,
    pub template: Template,
}

/// Tip or convenience indicator (55) with its fee.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Tip {
    /// `01`: the wallet asks the payer for a tip.
    Prompt,
    /// `02`, with the fee in 56.
    FixedFee(Amount),
    /// `03`, with the percentage in 57.
    PercentageFee(Percentage),
}

/// The additional data field template (62).
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct AdditionalData {
    pub bill_number: Option<Label>,
    pub mobile_number: Option<Label>,
    pub store_label: Option<Label>,
    pub loyalty_number: Option<Label>,
    pub reference_label: Option<Label>,
    pub customer_label: Option<Label>,
    pub terminal_label: Option<Label>,
    pub purpose: Option<Label>,
    /// 09.
    pub consumer_data_request: Option<ConsumerDataRequest>,
    /// Every other sub-ID (10–49 RFU, 50–99 payment-system templates), kept raw.
    pub other: Vec<Entry>,
}

/// The names of 62's sub-IDs 01–08, in order.
pub(crate) const LABEL_NAMES: [&str; 8] = [
    "bill number",
    "mobile number",
    "store label",
    "loyalty number",
    "reference label",
    "customer label",
    "terminal label",
    "purpose of transaction",
];

impl AdditionalData {
    /// Sub-IDs 01–08 with their values, in order.
    pub(crate) fn labels(&self) -> [(u8, Option<&Label>); 8] {
        [
            (1, self.bill_number.as_ref()),
            (2, self.mobile_number.as_ref()),
            (3, self.store_label.as_ref()),
            (4, self.loyalty_number.as_ref()),
            (5, self.reference_label.as_ref()),
            (6, self.customer_label.as_ref()),
            (7, self.terminal_label.as_ref()),
            (8, self.purpose.as_ref()),
        ]
    }

    /// The field of sub-ID `id` when it is one of 01–08.
    pub(crate) fn label_mut(&mut self, id: u8) -> Option<&mut Option<Label>> {
        match id {
            1 => Some(&mut self.bill_number),
            2 => Some(&mut self.mobile_number),
            3 => Some(&mut self.store_label),
            4 => Some(&mut self.loyalty_number),
            5 => Some(&mut self.reference_label),
            6 => Some(&mut self.customer_label),
            7 => Some(&mut self.terminal_label),
            8 => Some(&mut self.purpose),
            _ => None,
        }
    }
}

/// The merchant information language template (64): the name, and optionally the city, in
/// another language, for wallets that display it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LanguageTemplate {
    /// 00.
    pub language: LanguageCode,
    /// 01.
    pub merchant_name: MerchantName,
    /// 02.
    pub merchant_city: Option<MerchantCity>,
    /// 03–99, reserved: kept raw.
    pub other: Vec<Entry>,
}

/// The IDs whose value is a template of sub-objects.
pub(crate) fn is_template(id: u8) -> bool {
    matches!(id, 26..=51 | 62 | 64 | 80..=99)
}

/// The EMV name of a root ID, for messages.
pub(crate) fn root_name(id: u8) -> &'static str {
    match id {
        0 => "payload format indicator",
        1 => "point of initiation method",
        2..=25 => "merchant account information",
        26..=51 => "merchant account template",
        52 => "merchant category code",
        53 => "transaction currency",
        54 => "transaction amount",
        55 => "tip or convenience indicator",
        56 => "fixed convenience fee",
        57 => "percentage convenience fee",
        58 => "country code",
        59 => "merchant name",
        60 => "merchant city",
        61 => "postal code",
        62 => "additional data template",
        63 => "CRC",
        64 => "language template",
        65..=79 => "RFU object",
        _ => "unreserved template",
    }
}

const NETWORK_IDS: std::ops::RangeInclusive<u8> = 2..=25;
const TEMPLATE_IDS: std::ops::RangeInclusive<u8> = 26..=51;

impl Payload {
    /// A static payload with the mandatory fields and no merchant account yet: add one or
    /// more with [`add_template`](Payload::add_template), [`add_network`](Payload::add_network)
    /// or [`add_zhifu`](Payload::add_zhifu).
    pub fn new(
        merchant_category: MerchantCategoryCode,
        currency: CurrencyCode,
        country: CountryCode,
        merchant_name: MerchantName,
        merchant_city: MerchantCity,
    ) -> Payload {
        Payload {
            initiation: Some(Initiation::Static),
            merchant_accounts: Vec::new(),
            merchant_category,
            currency,
            amount: None,
            tip: None,
            country,
            merchant_name,
            merchant_city,
            postal_code: None,
            additional_data: None,
            language: None,
            rfu: Vec::new(),
            unreserved: Vec::new(),
        }
    }

    /// The merchant account with this ID.
    pub fn account(&self, id: DataObjectId) -> Option<&MerchantAccount> {
        self.merchant_accounts
            .iter()
            .find(|account| account.id() == id)
    }

    /// The templates (26–51) of the network `guid`: what a scanning wallet that belongs to
    /// that network understands in an aggregated code. Usually one.
    pub fn accounts_for<'a>(
        &'a self,
        guid: &'a str,
    ) -> impl Iterator<Item = (DataObjectId, &'a Template)> + 'a {
        self.merchant_accounts
            .iter()
            .filter_map(move |account| match account {
                MerchantAccount::Template { id, template } if template.is_for(guid) => {
                    Some((*id, template))
                }
                _ => None,
            })
    }

    /// Adds a network's template in the lowest free ID of 26–51 and returns that ID.
    pub fn add_template(&mut self, template: Template) -> Result<DataObjectId, ModelError> {
        let free = TEMPLATE_IDS
            .filter_map(DataObjectId::new)
            .find(|&id| self.account(id).is_none());
        let id = free.ok_or_else(|| ModelError::new("26-51", "all 26 template IDs are taken"))?;
        self.insert_account(MerchantAccount::Template { id, template });
        Ok(id)
    }

    /// Adds a card network's primitive value (02–25, e.g. 15 for UnionPay).
    pub fn add_network(&mut self, id: DataObjectId, value: Value) -> Result<(), ModelError> {
        if !NETWORK_IDS.contains(&id.get()) {
            return Err(ModelError::new(
                id.to_string(),
                "a network value takes an ID in 02-25",
            ));
        }
        if self.account(id).is_some() {
            return Err(ModelError::new(id.to_string(), "this ID is already taken"));
        }
        self.insert_account(MerchantAccount::Network { id, value });
        Ok(())
    }

    /// Keeps the accounts sorted by ID, the order a decoder returns them in.
    fn insert_account(&mut self, account: MerchantAccount) {
        let index = self
            .merchant_accounts
            .partition_point(|other| other.id() < account.id());
        self.merchant_accounts.insert(index, account);
    }
}
