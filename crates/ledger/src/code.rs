//! One result code per transfer and per account request. The `as_str` names are the stable
//! codes of the API: they are never renamed, and new ones are only appended.

macro_rules! codes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $num:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// The number under which storage keeps this code.
            pub fn number(self) -> u16 {
                match self { $($name::$variant => $num,)* }
            }

            pub fn from_number(number: u16) -> Option<$name> {
                match number { $($num => Some($name::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

codes! {
    /// The outcome of one transfer.
    TransferCode {
        /// Created now.
        Ok = 0 => "OK",
        /// Created before with the same payload: nothing moved this time.
        Exists = 1 => "EXISTS",
        ExistsWithDifferentPayload = 2 => "EXISTS_WITH_DIFFERENT_PAYLOAD",
        /// Another transfer of the same linked chain failed.
        LinkedEventFailed = 3 => "LINKED_EVENT_FAILED",
        /// The last transfer of a request is marked linked: the chain has no end.
        LinkedChainOpen = 4 => "LINKED_CHAIN_OPEN",
        AmountZero = 5 => "AMOUNT_ZERO",
        /// Above `i64::MAX` minor units.
        AmountTooLarge = 6 => "AMOUNT_TOO_LARGE",
        AccountsSame = 7 => "ACCOUNTS_SAME",
        TimeoutTooLarge = 8 => "TIMEOUT_TOO_LARGE",
        DebitAccountNotFound = 9 => "DEBIT_ACCOUNT_NOT_FOUND",
        CreditAccountNotFound = 10 => "CREDIT_ACCOUNT_NOT_FOUND",
        CurrencyMismatch = 11 => "CURRENCY_MISMATCH",
        DebitAccountClosed = 12 => "DEBIT_ACCOUNT_CLOSED",
        CreditAccountClosed = 13 => "CREDIT_ACCOUNT_CLOSED",
        /// The debit account would break its rule (not enough balance, overdraft limit).
        ExceedsBalance = 14 => "EXCEEDS_BALANCE",
        /// The credit account would break its rule (an asset credited below zero).
        ExceedsCredits = 15 => "EXCEEDS_CREDITS",
        /// A running total would pass `i64::MAX` minor units.
        Overflow = 16 => "OVERFLOW",
        PendingNotFound = 17 => "PENDING_NOT_FOUND",
        /// The id names a transfer that is not pending.
        PendingIdNotPending = 18 => "PENDING_ID_NOT_PENDING",
        PendingAlreadyPosted = 19 => "PENDING_ALREADY_POSTED",
        PendingAlreadyVoided = 20 => "PENDING_ALREADY_VOIDED",
        PendingExpired = 21 => "PENDING_EXPIRED",
        PostAmountExceedsPending = 22 => "POST_AMOUNT_EXCEEDS_PENDING",
    }
}

impl TransferCode {
    /// The transfer is in the ledger (now or from before).
    pub fn is_success(self) -> bool {
        matches!(self, TransferCode::Ok | TransferCode::Exists)
    }

    /// A rejection that depends on the payload alone. The same payload always gets it again,
    /// so it is not stored; every other rejection depends on the ledger's state and is stored,
    /// so that a retry returns the first answer even after the state changed.
    pub fn depends_on_payload_only(self) -> bool {
        matches!(
            self,
            TransferCode::LinkedChainOpen
                | TransferCode::AmountZero
                | TransferCode::AmountTooLarge
                | TransferCode::AccountsSame
                | TransferCode::TimeoutTooLarge
        )
    }
}

codes! {
    /// The outcome of opening or closing an account.
    AccountCode {
        Ok = 0 => "OK",
        Exists = 1 => "EXISTS",
        ExistsWithDifferentFields = 2 => "EXISTS_WITH_DIFFERENT_FIELDS",
        OverdraftLimitTooLarge = 3 => "OVERDRAFT_LIMIT_TOO_LARGE",
        NotFound = 4 => "ACCOUNT_NOT_FOUND",
        AlreadyClosed = 5 => "ACCOUNT_ALREADY_CLOSED",
        /// Only an account whose posted balance is zero and that holds nothing pending closes.
        BalanceNotZero = 6 => "ACCOUNT_BALANCE_NOT_ZERO",
    }
}
