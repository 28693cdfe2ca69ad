//! A `zhifu serve` process on a free port with a fresh data directory, and a small HTTP/1.1
//! client over a plain TCP stream (one request per connection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The TLS crypto provider the binary installs at start (ring), for this process's own TLS:
/// the browser's HTTP client and the merchants' https endpoints. Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub struct Server {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    /// The PostgreSQL schema, when the tests run on PostgreSQL: kept across restarts.
    schema: String,
    pub address: String,
    data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with_args(&[])
    }

    /// With more `zhifu serve` arguments (`--bank-mode fail`, say).
    pub fn start_with_args(args: &[&str]) -> Server {
        let schema = format!("http_{:016x}", rand::random::<u64>());
        Server::start_in(
            tempfile::tempdir().expect("temporary directory"),
            schema,
            args,
        )
    }

    /// Stops this server (SIGTERM) and starts another on the same data directory.
    pub fn restart(self) -> Server {
        self.restart_with_args(&[])
    }

    pub fn restart_with_args(mut self, args: &[&str]) -> Server {
        let data = std::mem::replace(
            &mut self.data,
            tempfile::tempdir().expect("temporary directory"),
        );
        let (status, _) = self.terminate_in_place();
        let log = std::fs::read_to_string(data.path().join("stderr.log")).unwrap_or_default();
        assert!(
            status.success(),
            "zhifu serve stopped with {status}:\n{log}"
        );
        // The next server owns the schema now: this one's drop must leave it.
        let schema = std::mem::take(&mut self.schema);
        Server::start_in(data, schema, args)
    }

    /// Kills the process (SIGKILL) at once; `crash_and_restart` starts the next.
    pub fn kill_now(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
    }

    /// Kills this server (SIGKILL: no shutdown, whatever was in flight cut short) and starts
    /// another on the same data directory.
    pub fn crash_and_restart(mut self) -> Server {
        let data = std::mem::replace(
            &mut self.data,
            tempfile::tempdir().expect("temporary directory"),
        );
        // Killed already by `kill_now`, or now.
        let _ = self.child.kill();
        self.child.wait().expect("wait for zhifu serve");
        let schema = std::mem::take(&mut self.schema);
        Server::start_in(data, schema, &[])
    }

    fn start_in(data: tempfile::TempDir, schema: String, args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_zhifu"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(args);
        // Under pg_virtualenv (as in CI) every server runs on PostgreSQL, in a schema of its
        // own; without a server, on SQLite in its data directory.
        if let Some(url) = zhifu_store::PostgresStore::url_from_env() {
            command.args(["--database-url", &url, "--database-schema", &schema]);
        }
        let mut child = command
            .env_remove("ZHIFU_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data.path().join("stderr.log"))
                    .expect("a log file"),
            )
            .spawn()
            .expect("start zhifu serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        // Lines before the address (the demo's greeting) are skipped, a bounded number.
        let mut first_line = String::new();
        for _ in 0..20 {
            first_line.clear();
            stdout.read_line(&mut first_line).expect("read the address");
            if first_line.starts_with("zhifu serve: listening on") {
                break;
            }
        }
        let address = first_line
            .trim()
            .strip_prefix("zhifu serve: listening on http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line: {first_line:?}"))
            .to_owned();
        Server {
            child,
            stdout,
            schema,
            address,
            data,
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        ))
    }

    /// A request with a body and, when given, a session token.
    pub fn send(&self, method: &str, path: &str, body: &str, token: Option<&str>) -> Response {
        let authorization = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        self.request(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        ))
    }

    /// A money-moving call: a JSON body, the session token, and an `Idempotency-Key` unless
    /// `key` is `None` (to test its absence).
    pub fn send_keyed(
        &self,
        method: &str,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: &str,
    ) -> Response {
        let key_header = key
            .map(|k| format!("Idempotency-Key: {k}\r\n"))
            .unwrap_or_default();
        self.request(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
             {key_header}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        ))
    }

    /// The operator token `zhifu serve` wrote into its data directory.
    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.data.path().join("operator.token")).expect("operator.token")
    }

    /// Everything the server wrote to its standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn request(&self, raw: &str) -> Response {
        self.request_bytes(raw.as_bytes())
    }

    /// A request given byte for byte (a binary upload, say).
    pub fn request_bytes(&self, raw: &[u8]) -> Response {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(raw).expect("send");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("read the response");
        let response = Response::parse(&String::from_utf8_lossy(&bytes));
        let head = String::from_utf8_lossy(&raw[..raw.len().min(512)]);
        let request_line = head.lines().next().unwrap_or_default();
        crate::contract::check(
            request_line,
            response.status,
            response.header("content-type"),
            &response.body,
        );
        response
    }

    /// Asks the server to stop as an operator would (SIGTERM), waits for it, and returns its
    /// exit status with what it printed after the address.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.terminate_in_place()
    }

    fn terminate_in_place(&mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let mut rest = String::new();
        self.stdout
            .read_to_string(&mut rest)
            .expect("read the rest of stdout");
        (self.child.wait().expect("wait for zhifu serve"), rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(url) =
            zhifu_store::PostgresStore::url_from_env().filter(|_| !self.schema.is_empty())
            && let Ok(mut store) = zhifu_store::PostgresStore::open(&url, None)
        {
            let _ = store
                .client()
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    fn parse(raw: &str) -> Response {
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
