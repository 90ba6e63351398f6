//! The search page against a locked API, in a real browser: headless Chromium driven over the
//! DevTools protocol (`--remote-debugging-pipe`, through two named pipes). The page asks for
//! the token on its first 401, says so when a wrong one is given, shows the order with the
//! right one, keeps the token in `sessionStorage` only (no cookie, no `localStorage`), and
//! does not ask again for the next lookup in the same tab.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const TOKEN: &str = "page-token-0123456789";

/// A browser driven over the DevTools protocol's pipe transport.
struct Browser {
    to_browser: std::fs::File,
    from_browser: BufReader<std::fs::File>,
    next_id: u64,
    session: Option<String>,
    _process: KillOnDrop,
    scratch: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Browser {
    /// Starts Chromium with a fresh profile; the protocol runs on its file descriptors 3 (in)
    /// and 4 (out), which a shell connects to two named pipes.
    fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).is_file(),
            "{CHROMIUM} is missing: scripts/test installs Debian's chromium"
        );
        let scratch = std::env::temp_dir().join(unique_name("orderstore-cdp"));
        std::fs::create_dir_all(scratch.join("profile"))
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", scratch.display()));
        let (to_path, from_path) = (scratch.join("to-browser"), scratch.join("from-browser"));
        for fifo in [&to_path, &from_path] {
            let mut make = Command::new("mkfifo");
            make.arg(fifo);
            run(make, "mkfifo");
        }
        let child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<\"$TO_BROWSER\" 4>\"$FROM_BROWSER\"")
            .arg(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
            ])
            .arg(format!(
                "--user-data-dir={}",
                scratch.join("profile").display()
            ))
            .arg("about:blank")
            .env("TO_BROWSER", &to_path)
            .env("FROM_BROWSER", &from_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {CHROMIUM}: {error}"));
        let process = KillOnDrop(child);
        // Each open waits for the other side's, in the order the shell opens them.
        let to_browser = std::fs::OpenOptions::new()
            .write(true)
            .open(&to_path)
            .unwrap_or_else(|error| panic!("cannot open the browser's input: {error}"));
        let from_browser = std::fs::File::open(&from_path)
            .unwrap_or_else(|error| panic!("cannot open the browser's output: {error}"));
        Browser {
            to_browser,
            from_browser: BufReader::new(from_browser),
            next_id: 1,
            session: None,
            _process: process,
            scratch,
        }
    }

    /// Sends a command and returns its answer (`result` or `error`), skipping events.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .unwrap_or_else(|error| panic!("cannot write to the browser: {error}"));
        loop {
            let mut raw = Vec::new();
            let read = self
                .from_browser
                .read_until(0, &mut raw)
                .unwrap_or_else(|error| panic!("cannot read from the browser: {error}"));
            assert!(read > 0, "the browser closed its pipe");
            raw.pop();
            let answer: Value = serde_json::from_slice(&raw)
                .unwrap_or_else(|error| panic!("the browser sent bad JSON: {error}"));
            if answer["id"] == json!(id) {
                return answer;
            }
        }
    }

    /// Opens `url` in a new tab and attaches to it.
    fn open(&mut self, url: &str) {
        let created = self.call("Target.createTarget", json!({ "url": url }));
        let target = created["result"]["targetId"].clone();
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        let session = attached["result"]["sessionId"].as_str().map(str::to_string);
        assert!(session.is_some(), "cannot attach to the tab: {attached}");
        self.session = session;
    }

    /// The value of `expression` in the tab; `Null` while the page is between documents.
    fn eval(&mut self, expression: &str) -> Value {
        let answer = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        answer["result"]["result"]["value"].clone()
    }

    /// Waits until `expression` is `expected`; fails with `what` and the page's text.
    fn wait_until(&mut self, what: &str, expression: &str, expected: Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.eval(expression) != expected {
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out waiting for {what}; the page shows: {text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `token` into the page's token box and submits it.
    fn give_token(&mut self, token: &str) {
        let submitted = self.eval(&format!(
            "(() => {{ const input = document.getElementById('token-input'); \
             input.value = {}; input.form.requestSubmit(); return true; }})()",
            json!(token)
        ));
        assert_eq!(submitted, json!(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_token_once_and_keeps_it_for_the_tab() {
    let (app, db, orders) = app_with_stored_orders(2, &[("HTTP_AUTH_TOKENS", TOKEN)]).await;
    let second_id: i64 = db
        .query_one(
            "SELECT id FROM orders WHERE order_uid = $1",
            &[&orders[1].0],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .get(0);
    let port = app.http_port();
    let uid = orders[0].0.clone();

    tokio::task::spawn_blocking(move || {
        let mut browser = Browser::start();
        browser.open(&format!("http://127.0.0.1:{port}/?q={uid}"));
        let title = "document.querySelector('.message-title')?.textContent ?? null";
        browser.wait_until(
            "the page to ask for a token",
            title,
            json!("This orderstore needs a token."),
        );
        assert_eq!(
            browser.eval("document.getElementById('token-input').type"),
            json!("password")
        );
        browser.give_token("not-the-token-0000000");
        browser.wait_until(
            "the page to refuse the wrong token",
            title,
            json!("That token is not accepted."),
        );
        browser.give_token(TOKEN);
        let shown = "document.querySelector('.order-uid')?.textContent ?? null";
        browser.wait_until("the order to be shown", shown, json!(uid));
        assert_eq!(
            browser.eval("sessionStorage.getItem('orderstore.token')"),
            json!(TOKEN)
        );
        assert_eq!(browser.eval("localStorage.length"), json!(0));
        assert_eq!(browser.eval("document.cookie"), json!(""));
        // The next lookup in the same tab uses the kept token without asking.
        browser.eval(&format!("location.href = '/?q={second_id}'"));
        browser.wait_until("the second order to be shown", shown, json!(orders[1].0));
        browser.session = None;
        let _ = browser.call("Browser.close", json!({}));
    })
    .await
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    app.stop().await;
}
