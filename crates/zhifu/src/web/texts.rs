//! Every word the web pages show, in each language: a struct, so that a missing translation
//! does not compile.

use zhifu_domain::wallet::limits::RealNameClass;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" | "zh-CN" | "zh-Hans" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        self.texts().code
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

pub struct Texts {
    pub code: &'static str,
    pub html_lang: &'static str,
    pub other_lang: &'static str,
    pub other_lang_name: &'static str,
    pub brand: &'static str,
    pub log_in: &'static str,
    pub log_out: &'static str,
    pub phone: &'static str,
    pub password: &'static str,
    pub credentials_wrong: &'static str,
    pub unavailable: &'static str,
    pub wallet: &'static str,
    pub balance: &'static str,
    pub statement: &'static str,
    pub statement_empty: &'static str,
    pub verify_prompt: &'static str,
    pub sign_up: &'static str,
    pub transfer: &'static str,
    pub payee_phone: &'static str,
    pub amount_yuan: &'static str,
    pub pin: &'static str,
    pub send: &'static str,
    pub transfer_note: &'static str,
    pub incoming: &'static str,
    pub until: &'static str,
    pub accept: &'static str,
    pub give_back: &'static str,
    pub amount_invalid: &'static str,
    pub verify: &'static str,
    pub real_name: &'static str,
    pub id_number: &'static str,
    pub top_up: &'static str,
    pub bind_card: &'static str,
    pub card_number: &'static str,
    pub card_phone: &'static str,
    pub card: &'static str,
    pub set_pin: &'static str,
    pub red_packet: &'static str,
    pub red_packet_sent: &'static str,
    pub lucky: &'static str,
    pub normal: &'static str,
    pub packet_amount: &'static str,
    pub shares: &'static str,
    pub grab: &'static str,
    pub withdraw: &'static str,
    pub fee: &'static str,
    pub free_quota_left: &'static str,
    pub confirm: &'static str,
    pub next: &'static str,
    pub bind_card_first: &'static str,
    /// By error code, for the errors a page can show; others fall back to `unavailable`.
    errors: &'static [(&'static str, &'static str)],
    classes: [&'static str; 4],
    /// By the ledger's business code: top-up, withdrawal, fee, transfer, red packet.
    codes: [&'static str; 5],
    code_other: &'static str,
}

impl Texts {
    pub fn class_name(&self, class: RealNameClass) -> &'static str {
        self.classes[match class {
            RealNameClass::Unverified => 0,
            RealNameClass::ClassI => 1,
            RealNameClass::ClassII => 2,
            RealNameClass::ClassIII => 3,
        }]
    }

    /// What to tell a person for an API error code.
    pub fn error(&self, code: &str) -> &'static str {
        self.errors
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(self.unavailable, |(_, text)| text)
    }

    pub fn transfer_code(&self, code: u16) -> &'static str {
        match code {
            1..=5 => self.codes[usize::from(code - 1)],
            _ => self.code_other,
        }
    }
}

static ZH: Texts = Texts {
    code: "zh",
    html_lang: "zh-Hans",
    other_lang: "en",
    other_lang_name: "English",
    brand: "支付",
    log_in: "登录",
    log_out: "退出登录",
    phone: "手机号",
    password: "登录密码",
    credentials_wrong: "手机号或密码错误",
    unavailable: "服务暂时不可用，请稍后再试",
    wallet: "钱包",
    balance: "零钱余额",
    statement: "账单",
    statement_empty: "暂无账单",
    verify_prompt: "完成实名认证（姓名和身份证号）后才能收款和领取红包。",
    sign_up: "注册",
    transfer: "转账",
    payee_phone: "对方手机号",
    amount_yuan: "金额（元）",
    pin: "支付密码",
    send: "转账",
    transfer_note: "对方确认收款后到账；24小时内未确认将自动退回。",
    incoming: "待确认收款",
    until: "截止",
    accept: "确认收款",
    give_back: "退还",
    amount_invalid: "请输入正确的金额，例如 12.34",
    verify: "实名认证",
    real_name: "真实姓名",
    id_number: "身份证号",
    top_up: "充值",
    bind_card: "绑定银行卡",
    card_number: "银行卡号",
    card_phone: "银行预留手机号",
    card: "银行卡",
    set_pin: "设置支付密码",
    red_packet: "红包",
    red_packet_sent: "红包已发出，把链接分享给朋友：",
    lucky: "拼手气红包（总金额随机分配）",
    normal: "普通红包（每个金额相同）",
    packet_amount: "金额（元；拼手气为总额，普通为单个）",
    shares: "个数",
    grab: "抢红包",
    withdraw: "提现",
    fee: "手续费（元）",
    free_quota_left: "提现后剩余免费额度（元）",
    confirm: "确认提现",
    next: "下一步",
    bind_card_first: "提现前请先绑定银行卡。",
    errors: &[
        ("PHONE_INVALID", "请输入正确的手机号"),
        ("PHONE_TAKEN", "该手机号已注册"),
        ("PASSWORD_TOO_SHORT", "登录密码至少8位"),
        ("PASSWORD_TOO_LONG", "登录密码过长"),
        ("PIN_WRONG", "支付密码错误"),
        ("PIN_LOCKED", "支付密码错误次数过多，已暂时锁定"),
        ("PIN_NOT_SET", "请先设置支付密码"),
        ("EXCEEDS_BALANCE", "零钱余额不足"),
        ("PAYEE_NOT_FOUND", "该手机号未注册"),
        ("PAYEE_IS_PAYER", "不能转账给自己"),
        ("RECIPIENT_UNVERIFIED", "对方尚未实名认证，暂不能收款"),
        (
            "LIMIT_CLASS_I_CUMULATIVE",
            "已超过I类账户累计1000元的支付限额，请绑定银行卡升级",
        ),
        ("LIMIT_YEARLY", "已超过本年度的支付限额"),
        ("LIMIT_DAILY", "已超过今日的支付限额"),
        ("AMOUNT_INVALID", "金额不正确"),
        ("TRANSFER_NOT_HELD", "该转账已处理或已过期"),
        ("NAME_INVALID", "请输入身份证上的姓名"),
        ("ID_NUMBER_FORMAT", "身份证号格式不正确"),
        ("ID_NUMBER_BIRTH_DATE", "身份证号中的出生日期不正确"),
        ("ID_NUMBER_CHECK_DIGIT", "身份证号校验位不正确"),
        ("IDENTITY_MISMATCH", "与已认证的身份信息不一致"),
        ("IDENTITY_REQUIRED", "请先完成实名认证"),
        ("CARD_NUMBER_FORMAT", "银行卡号格式不正确"),
        ("CARD_NUMBER_CHECKSUM", "银行卡号不正确"),
        ("CARD_ALREADY_BOUND", "该银行卡已绑定"),
        ("CARD_NOT_FOUND", "未找到该银行卡"),
        ("BANK_HOLDER_MISMATCH", "银行预留信息不一致"),
        ("BANK_DECLINED", "银行拒绝了本次操作"),
        ("BANK_INSUFFICIENT_FUNDS", "银行卡余额不足"),
        ("BANK_TIMEOUT", "银行处理中，请稍后查看"),
        ("PROCESSING", "银行处理中，请稍后查看"),
        ("RED_PACKET_SOLD_OUT", "手慢了，红包派完了"),
        ("RED_PACKET_EXPIRED", "红包已过期"),
        ("RED_PACKET_NOT_FOUND", "红包不存在"),
        ("RED_PACKET_TOO_LARGE", "单个红包总额不能超过200元"),
        ("RED_PACKET_SHARE_TOO_SMALL", "每个红包至少0.01元"),
        ("RED_PACKET_SHARES", "红包个数为1到100个"),
        ("PIN_TRIVIAL", "支付密码过于简单"),
        ("PIN_FORMAT", "支付密码为6位数字"),
        ("PIN_EQUALS_PASSWORD", "支付密码不能与登录密码相同"),
        ("PASSWORD_WRONG", "登录密码错误"),
    ],
    classes: ["未实名", "I类账户", "II类账户", "III类账户"],
    codes: ["充值", "提现", "提现手续费", "转账", "红包"],
    code_other: "其他",
};

static EN: Texts = Texts {
    code: "en",
    html_lang: "en",
    other_lang: "zh",
    other_lang_name: "中文",
    brand: "zhifu",
    log_in: "Log in",
    log_out: "Log out",
    phone: "Phone number",
    password: "Login password",
    credentials_wrong: "Wrong phone number or password",
    unavailable: "The service is unavailable; try again shortly",
    wallet: "Wallet",
    balance: "Balance",
    statement: "Statement",
    statement_empty: "No entries yet",
    verify_prompt: "Verify your real name (name and ID number) to receive transfers and red packets.",
    sign_up: "Sign up",
    transfer: "Transfer",
    payee_phone: "Payee's phone number",
    amount_yuan: "Amount (yuan)",
    pin: "Payment PIN",
    send: "Send",
    transfer_note: "It arrives when the payee accepts it; unaccepted after 24 hours it comes back.",
    incoming: "Waiting for you to accept",
    until: "until",
    accept: "Accept",
    give_back: "Return",
    amount_invalid: "Enter an amount such as 12.34",
    verify: "Verify your real name",
    real_name: "Name as on your ID card",
    id_number: "Resident ID number",
    top_up: "Top up",
    bind_card: "Bind a bank card",
    card_number: "Card number",
    card_phone: "Phone number registered with the bank",
    card: "Card",
    set_pin: "Set payment PIN",
    red_packet: "Red packet",
    red_packet_sent: "Sent. Share this link with your friends:",
    lucky: "Lucky (the total split at random)",
    normal: "Normal (every share the same)",
    packet_amount: "Amount in yuan (lucky: the total; normal: each share)",
    shares: "Shares",
    grab: "Grab",
    withdraw: "Withdraw",
    fee: "Fee (yuan)",
    free_quota_left: "Free quota left afterwards (yuan)",
    confirm: "Confirm withdrawal",
    next: "Next",
    bind_card_first: "Bind a bank card to withdraw to.",
    errors: &[
        ("PHONE_INVALID", "Enter a mainland mobile number"),
        ("PHONE_TAKEN", "This phone number already has an account"),
        (
            "PASSWORD_TOO_SHORT",
            "A login password has at least 8 characters",
        ),
        ("PASSWORD_TOO_LONG", "This login password is too long"),
        ("PIN_WRONG", "Wrong payment PIN"),
        (
            "PIN_LOCKED",
            "Too many wrong PINs; payments are locked for a while",
        ),
        ("PIN_NOT_SET", "Set a payment PIN first"),
        ("EXCEEDS_BALANCE", "Your balance is not enough"),
        (
            "PAYEE_NOT_FOUND",
            "Nobody has a wallet with this phone number",
        ),
        ("PAYEE_IS_PAYER", "You cannot transfer to yourself"),
        (
            "RECIPIENT_UNVERIFIED",
            "The payee has not verified their real name and cannot receive yet",
        ),
        (
            "LIMIT_CLASS_I_CUMULATIVE",
            "Over the 1,000 yuan limit of a class I account; bind a card to raise it",
        ),
        ("LIMIT_YEARLY", "Over this year's payment limit"),
        ("LIMIT_DAILY", "Over today's payment limit"),
        ("AMOUNT_INVALID", "This amount is not allowed"),
        (
            "TRANSFER_NOT_HELD",
            "This transfer was handled already or has expired",
        ),
        ("NAME_INVALID", "Enter your name as on your ID card"),
        (
            "ID_NUMBER_FORMAT",
            "An ID number has 17 digits and a final digit or X",
        ),
        (
            "ID_NUMBER_BIRTH_DATE",
            "The ID number's birth date is not a real date",
        ),
        (
            "ID_NUMBER_CHECK_DIGIT",
            "The ID number's check digit does not match",
        ),
        (
            "IDENTITY_MISMATCH",
            "This is not the identity this account was verified with",
        ),
        ("IDENTITY_REQUIRED", "Verify your real name first"),
        ("CARD_NUMBER_FORMAT", "A card number has 12 to 19 digits"),
        ("CARD_NUMBER_CHECKSUM", "This card number is not valid"),
        ("CARD_ALREADY_BOUND", "This card is bound already"),
        ("CARD_NOT_FOUND", "No such card"),
        (
            "BANK_HOLDER_MISMATCH",
            "The bank says these details do not match the card",
        ),
        ("BANK_DECLINED", "The bank declined"),
        (
            "BANK_INSUFFICIENT_FUNDS",
            "The card's account does not have enough money",
        ),
        (
            "BANK_TIMEOUT",
            "The bank is still processing; check again shortly",
        ),
        (
            "PROCESSING",
            "The bank is still processing; check again shortly",
        ),
        ("RED_PACKET_SOLD_OUT", "Too late: every share is taken"),
        ("RED_PACKET_EXPIRED", "This red packet has expired"),
        ("RED_PACKET_NOT_FOUND", "No such red packet"),
        (
            "RED_PACKET_TOO_LARGE",
            "A red packet holds at most 200 yuan",
        ),
        (
            "RED_PACKET_SHARE_TOO_SMALL",
            "Every share holds at least 0.01 yuan",
        ),
        ("RED_PACKET_SHARES", "A red packet has 1 to 100 shares"),
        ("PIN_TRIVIAL", "This PIN is too easy to guess"),
        ("PIN_FORMAT", "A payment PIN is six digits"),
        (
            "PIN_EQUALS_PASSWORD",
            "The PIN must differ from the login password",
        ),
        ("PASSWORD_WRONG", "Wrong login password"),
    ],
    classes: ["Not verified", "Class I", "Class II", "Class III"],
    codes: [
        "Top-up",
        "Withdrawal",
        "Withdrawal fee",
        "Transfer",
        "Red packet",
    ],
    code_other: "Other",
};
