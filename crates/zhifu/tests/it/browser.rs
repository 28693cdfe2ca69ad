//! The web wallet in a real headless Chromium (Debian's), driven over CDP.

use crate::support::Server;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;

async fn browser() -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    // chromiumoxide's HTTP client is the binary's reqwest, built without a provider of its own.
    crate::support::install_tls_provider();
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let config = BrowserConfig::builder()
        .chrome_executable("/usr/bin/chromium")
        .no_sandbox()
        .user_data_dir(profile.path())
        // A phone's screen: the pages are mobile first.
        .viewport(chromiumoxide::handler::viewport::Viewport {
            width: 390,
            height: 760,
            device_scale_factor: Some(1.0),
            emulating_mobile: true,
            is_landscape: false,
            has_touch: true,
        })
        // Without these, Chromium keeps dialling out on a machine with no network.
        .args([
            "disable-gpu",
            "disable-quic",
            "disable-component-update",
            "disable-background-networking",
            "disable-dev-shm-usage",
        ])
        .build()
        .expect("a browser configuration");
    let (browser, mut handler) = Browser::launch(config).await.expect("launch chromium");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, events, profile)
}

/// The element's text once it is there: a form post replaces the document under our feet, so
/// a lookup may briefly find nothing or a node that is gone. Bounded: 10 seconds.
async fn text(page: &Page, selector: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(element) = page.find_element(selector).await
            && let Ok(Some(text)) = element.inner_text().await
        {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {selector} on the page"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the page's address ends with `path` (after a redirect), at most 10 seconds.
async fn wait_for_path(page: &Page, path: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let url = page.url().await.ok().flatten().unwrap_or_default();
        if url.split('?').next().is_some_and(|u| u.ends_with(path)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached {path}, at {url}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Fills the log-in form on the page shown and submits it.
async fn log_in(page: &Page, phone: &str, password: &str) {
    fill(page, "#phone", phone).await;
    fill(page, "#password", password).await;
    click(page, "#log-in").await;
}

#[test]
#[cfg_attr(
    not(zhifu_chromium),
    ignore = "SKIPPED: no /usr/bin/chromium; apt-get install chromium"
)]
fn log_in_see_the_balance_and_statement_in_both_languages() {
    let server = Server::start_with_args(&["--demo"]);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (mut browser, events, _profile) = browser().await;
        let page = browser
            .new_page(format!("http://{}/login?lang=en", server.address))
            .await
            .unwrap();
        assert_eq!(text(&page, "h1").await, "Log in");
        log_in(&page, "13800000001", "wrong password").await;
        assert_eq!(
            text(&page, "#error").await,
            "Wrong phone number or password"
        );

        log_in(&page, "13800000001", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        assert_eq!(text(&page, "#balance").await, "1000.00");
        assert!(text(&page, "#statement").await.contains("Top-up"));
        // A withdrawal: the fee is shown before the person confirms.
        click(&page, "#to-withdraw").await;
        wait_for_path(&page, "/withdraw").await;
        fill(&page, "#amount", "600").await;
        submit(&page, "#quote").await;
        assert_eq!(
            text(&page, "#quote-fee").await,
            "0.00",
            "inside the free quota"
        );
        fill(&page, "#pin", "802514").await;
        click(&page, "#confirm").await;
        wait_for_path(&page, "/wallet").await;
        assert_eq!(text(&page, "#balance").await, "400.00");
        // One withdrawal reads as its hold (bracketed, held) and the money leaving, not as two.
        let statement = text(&page, "#statement").await;
        assert!(statement.contains("Withdrawal held"), "{statement}");
        assert!(statement.contains("(-600.00)"), "{statement}");
        assert_eq!(statement.matches("-600.00").count(), 2, "{statement}");

        // The same page in Chinese, by the switch in the header; the choice is remembered.
        page.goto(format!("http://{}/wallet?lang=zh", server.address))
            .await
            .unwrap();
        assert!(text(&page, "body").await.contains("零钱余额"));
        assert!(text(&page, "#statement").await.contains("充值"));
        // `ZHIFU_SCREENSHOT=docs/wallet.png cargo test -p zhifu browser` refreshes the README's.
        if let Some(path) = std::env::var_os("ZHIFU_SCREENSHOT") {
            let params = chromiumoxide::page::ScreenshotParams::builder().build();
            page.save_screenshot(params, &path)
                .await
                .expect("a screenshot");
        }

        page.find_element("#log-out")
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        page.wait_for_navigation().await.unwrap();
        assert_eq!(text(&page, "h1").await, "登录");
        page.goto(format!("http://{}/wallet", server.address))
            .await
            .unwrap();
        assert_eq!(
            text(&page, "h1").await,
            "登录",
            "logged out: the wallet sends you to log in"
        );

        // An unverified person is told how to verify.
        log_in(&page, "13800000003", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        assert!(text(&page, "#verify-prompt").await.contains("实名认证"));

        browser.close().await.expect("close chromium");
        let _ = events.await;
    });
}

/// Waits until `selector` is on the page (a form post may still be loading), at most 10 s.
async fn wait_for(page: &Page, selector: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let script = format!("document.querySelector('{selector}') !== null");
    loop {
        let found = page
            .evaluate(script.as_str())
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok());
        if found == Some(true) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {selector} on the page"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sets a field's value in one script (find and set together, so that a page being replaced
/// cannot slip in between), retrying until the field is there, at most 10 seconds.
async fn fill(page: &Page, selector: &str, value: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let script = format!(
        "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.value = {value:?}; return true; }})()"
    );
    loop {
        let done = page
            .evaluate(script.as_str())
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok());
        if done == Some(true) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {selector} to fill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Clicks a submit button and waits until another document has replaced this one, at most
/// 10 seconds: for a form that comes back to the same address.
async fn submit(page: &Page, selector: &str) {
    page.evaluate("window.zhifuOldDocument = true")
        .await
        .unwrap();
    click(page, selector).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let replaced = page
            .evaluate("window.zhifuOldDocument === undefined")
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok());
        if replaced == Some(true) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{selector} never led to a new page"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn click(page: &Page, selector: &str) {
    wait_for(page, selector).await;
    page.find_element(selector)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[test]
#[cfg_attr(
    not(zhifu_chromium),
    ignore = "SKIPPED: no /usr/bin/chromium; apt-get install chromium"
)]
fn sign_up_then_a_transfer_is_sent_and_accepted_in_the_browser() {
    let server = Server::start_with_args(&["--demo"]);
    let base = format!("http://{}", server.address);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (mut browser, events, _profile) = browser().await;
        let page = browser
            .new_page(format!("{base}/signup?lang=en"))
            .await
            .unwrap();
        fill(&page, "#phone", "13600000000").await;
        fill(&page, "#password", "short").await;
        click(&page, "#sign-up").await;
        // A value set by script skips the browser's own minlength check: ours answers.
        assert_eq!(
            text(&page, "#error").await,
            "A login password has at least 8 characters"
        );
        fill(&page, "#password", "long enough password").await;
        click(&page, "#sign-up").await;
        wait_for_path(&page, "/wallet").await;
        assert_eq!(text(&page, "#balance").await, "0.00");
        assert!(
            text(&page, "#verify-prompt")
                .await
                .contains("Verify your real name")
        );

        // Verify, bind a card, try to top up: a PIN is needed first, and the page says so in
        // the person's language.
        click(&page, "#to-verify").await;
        wait_for_path(&page, "/verify").await;
        fill(&page, "#name", "陈静").await;
        fill(&page, "#id_number", "110105199001011233").await;
        click(&page, "#verify").await;
        assert_eq!(
            text(&page, "#error").await,
            "The ID number's check digit does not match"
        );
        fill(&page, "#name", "陈静").await;
        fill(&page, "#id_number", "110105199001011232").await;
        click(&page, "#verify").await;
        wait_for_path(&page, "/wallet").await;
        page.goto(format!("{base}/topup")).await.unwrap();
        fill(&page, "#card_number", "6222029876543210987").await;
        fill(&page, "#name", "陈静").await;
        fill(&page, "#id_number", "110105199001011232").await;
        fill(&page, "#phone", "13600000000").await;
        click(&page, "#bind").await;
        fill(&page, "#amount", "50").await;
        fill(&page, "#pin", "802514").await;
        click(&page, "#top-up").await;
        assert_eq!(text(&page, "#error").await, "Set a payment PIN first");
        page.goto(format!("{base}/pin")).await.unwrap();
        fill(&page, "#password", "long enough password").await;
        fill(&page, "#pin", "123456").await;
        click(&page, "#set-pin").await;
        assert_eq!(text(&page, "#error").await, "This PIN is too easy to guess");
        fill(&page, "#password", "long enough password").await;
        fill(&page, "#pin", "802514").await;
        click(&page, "#set-pin").await;
        wait_for_path(&page, "/wallet").await;
        page.goto(format!("{base}/topup")).await.unwrap();
        fill(&page, "#amount", "50").await;
        fill(&page, "#pin", "802514").await;
        click(&page, "#top-up").await;
        wait_for_path(&page, "/wallet").await;
        assert_eq!(text(&page, "#balance").await, "50.00");
        click(&page, "#log-out").await;
        wait_for_path(&page, "/login").await;

        // The demo's class II person sends 12.34 yuan to the class I person.
        log_in(&page, "13800000001", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        click(&page, "#to-transfer").await;
        wait_for_path(&page, "/transfer").await;
        fill(&page, "#to_phone", "13800000002").await;
        fill(&page, "#amount", "12.34").await;
        fill(&page, "#pin", "000001").await;
        click(&page, "#send").await;
        assert_eq!(text(&page, "#error").await, "Wrong payment PIN");
        fill(&page, "#pin", "802514").await;
        click(&page, "#send").await;
        wait_for_path(&page, "/wallet").await;
        assert_eq!(
            text(&page, "#balance").await,
            "1000.00",
            "held, not yet taken"
        );
        click(&page, "#log-out").await;
        wait_for_path(&page, "/login").await;

        log_in(&page, "13800000002", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        assert!(text(&page, "#incoming").await.contains("12.34"));
        click(&page, ".accept").await;
        wait_for_path(&page, "/wallet").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while text(&page, "#balance").await != "12.34" {
            assert!(
                std::time::Instant::now() < deadline,
                "the accepted transfer never showed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }

        browser.close().await.expect("close chromium");
        let _ = events.await;
    });
}

#[test]
#[cfg_attr(
    not(zhifu_chromium),
    ignore = "SKIPPED: no /usr/bin/chromium; apt-get install chromium"
)]
fn a_red_packet_is_sent_shared_and_grabbed_in_the_browser() {
    let server = Server::start_with_args(&["--demo"]);
    let base = format!("http://{}", server.address);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (mut browser, events, _profile) = browser().await;
        let page = browser
            .new_page(format!("{base}/login?lang=en"))
            .await
            .unwrap();
        log_in(&page, "13800000001", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        click(&page, "#to-red-packet").await;
        wait_for_path(&page, "/red-packets").await;
        fill(&page, "#amount", "10").await;
        fill(&page, "#shares", "2").await;
        fill(&page, "#pin", "802514").await;
        submit(&page, "#send-packet").await;
        let link = text(&page, "#packet-link").await;
        assert!(link.starts_with("/r/"), "{link}");
        page.goto(format!("{base}/wallet")).await.unwrap();
        click(&page, "#log-out").await;
        wait_for_path(&page, "/login").await;

        // The class I demo person grabs a share, and sees the same share on a second try.
        log_in(&page, "13800000002", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        page.goto(format!("{base}{link}")).await.unwrap();
        submit(&page, "#grab").await;
        let grabbed = text(&page, "#grabbed").await;
        submit(&page, "#grab").await;
        assert_eq!(text(&page, "#grabbed").await, grabbed);
        page.goto(format!("{base}/wallet")).await.unwrap();
        assert_eq!(text(&page, "#balance").await, grabbed);
        click(&page, "#log-out").await;
        wait_for_path(&page, "/login").await;

        // Not verified: told so, nothing grabbed.
        log_in(&page, "13800000003", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        page.goto(format!("{base}{link}")).await.unwrap();
        submit(&page, "#grab").await;
        assert!(text(&page, "#error").await.contains("not verified"));

        browser.close().await.expect("close chromium");
        let _ = events.await;
    });
}

#[test]
#[cfg_attr(
    not(zhifu_chromium),
    ignore = "SKIPPED: no /usr/bin/chromium; apt-get install chromium"
)]
fn the_api_explorer_renders_the_document_offline() {
    // Chromium runs with background networking off on a machine without internet: Swagger UI
    // must come from the binary, and the page must not need anything from elsewhere.
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (mut browser, events, _profile) = browser().await;
        let page = browser
            .new_page(format!("http://{}/swagger-ui/", server.address))
            .await
            .unwrap();
        wait_for(&page, "#operations-transfers-send_transfer").await;
        let title = text(&page, ".info .title").await;
        assert!(title.starts_with("zhifu wallet API"), "{title}");
        browser.close().await.unwrap();
        events.await.unwrap();
    });
}

#[test]
#[cfg_attr(
    not(zhifu_chromium),
    ignore = "SKIPPED: no /usr/bin/chromium; apt-get install chromium"
)]
fn a_receive_code_is_shown_scanned_and_paid_in_the_browser() {
    let server = Server::start_with_args(&["--demo"]);
    let base = format!("http://{}", server.address);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (mut browser, events, _profile) = browser().await;
        let page = browser
            .new_page(format!("{base}/login?lang=en"))
            .await
            .unwrap();

        // The payee shows a code for 12.34 yuan: a QR code, and its text.
        log_in(&page, "13800000002", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        click(&page, "#to-receive").await;
        wait_for_path(&page, "/receive").await;
        wait_for(&page, "#qr svg").await;
        fill(&page, "#amount", "12.34").await;
        click(&page, "#set-amount").await;
        assert_eq!(text(&page, "#preset").await, "¥12.34");
        let payload = page
            .evaluate("document.querySelector('#payload').textContent")
            .await
            .unwrap()
            .into_value::<String>()
            .unwrap();
        assert!(payload.starts_with("000201"), "{payload}");
        page.goto(format!("{base}/pay-code")).await.unwrap();
        let digits = text(&page, "#digits").await;
        assert_eq!(digits.replace(' ', "").len(), 18, "{digits}");
        page.goto(format!("{base}/wallet")).await.unwrap();
        click(&page, "#log-out").await;

        // The payer pastes it (a scanned picture goes the same way), sees whom it pays and
        // the preset amount, confirms with the PIN.
        log_in(&page, "13800000001", "zhifu-demo").await;
        wait_for_path(&page, "/wallet").await;
        click(&page, "#to-scan").await;
        wait_for_path(&page, "/scan").await;
        fill(&page, "#payload", &payload).await;
        click(&page, "#read").await;
        assert!(!text(&page, "#payee").await.is_empty());
        assert_eq!(text(&page, "#preset").await, "¥12.34");
        fill(&page, "#pin", "802514").await;
        click(&page, "#pay").await;
        wait_for_path(&page, "/wallet").await;
        assert_eq!(text(&page, "#balance").await, "987.66");

        // Every entry has its receipt: the amount, what it was, the other side masked.
        click(&page, ".receipt-link").await;
        assert_eq!(text(&page, "#receipt-amount").await, "-12.34");
        assert_eq!(text(&page, "#receipt-kind").await, "Code payment");
        assert_eq!(text(&page, "#receipt-other").await, "138****0002");
        browser.close().await.unwrap();
        events.await.unwrap();
    });
}

#[test]
#[cfg_attr(
    not(zhifu_chromium),
    ignore = "SKIPPED: no /usr/bin/chromium; apt-get install chromium"
)]
fn a_shop_charges_from_the_console_and_a_customer_pays_in_the_wallet() {
    let server = Server::start_with_args(&["--demo"]);
    let base = format!("http://{}", server.address);
    let link = server.send(
        "POST",
        "/api/v1/operator/merchants/1/console-link",
        "",
        Some(&server.operator_token()),
    );
    assert_eq!(link.status, 201, "{}", link.body);
    let link = format!("{base}{}", link.json()["url"].as_str().unwrap());
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (mut browser, events, _profile) = browser().await;
        // The shop opens its console and charges 23.50 with a QR code.
        let till = browser.new_page(link).await.unwrap();
        wait_for_path(&till, "/console").await;
        click(&till, "#to-cashier").await;
        wait_for_path(&till, "/console/cashier").await;
        fill(&till, "#amount", "23.50").await;
        click(&till, "#charge").await;
        wait_for(&till, "#order-qr svg").await;
        assert_eq!(text(&till, "#order-state").await, "NOTPAY");
        let payload = text(&till, "#order-payload").await;
        assert!(payload.starts_with("000201"), "{payload}");

        // A customer pastes the code in the wallet, sees the shop and the amount, pays.
        let wallet = browser
            .new_page(format!("{base}/login?lang=en"))
            .await
            .unwrap();
        log_in(&wallet, "13800000001", "zhifu-demo").await;
        wait_for_path(&wallet, "/wallet").await;
        click(&wallet, "#to-scan").await;
        wait_for_path(&wallet, "/scan").await;
        fill(&wallet, "#payload", &payload).await;
        click(&wallet, "#read").await;
        assert_eq!(text(&wallet, "#payee").await, "Demo noodle bar");
        assert_eq!(text(&wallet, "#preset").await, "¥23.50");
        fill(&wallet, "#pin", "802514").await;
        click(&wallet, "#pay").await;
        wait_for_path(&wallet, "/wallet").await;
        assert_eq!(text(&wallet, "#balance").await, "976.50");
        click(&wallet, ".receipt-link").await;
        assert_eq!(text(&wallet, "#receipt-kind").await, "Merchant payment");
        assert_eq!(text(&wallet, "#receipt-other").await, "Demo noodle bar");

        // The till's page, reloading itself, shows it paid; the dashboard counts it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while text(&till, "#order-state").await != "SUCCESS" {
            assert!(
                std::time::Instant::now() < deadline,
                "the order page never showed SUCCESS"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        till.goto(format!("{base}/console")).await.unwrap();
        assert_eq!(text(&till, "#sales").await, "23.50");
        wait_for(&till, "#by-hour rect").await;
        browser.close().await.unwrap();
        events.await.unwrap();
    });
}
