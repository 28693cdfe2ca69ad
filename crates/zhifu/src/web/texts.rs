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
