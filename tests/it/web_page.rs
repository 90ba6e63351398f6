//! The web page at `/`, rendered by a real browser: Debian's headless Chromium loads
//! `/?q=<id or order_uid>` from an instance started in-process, runs the page's script, and
//! dumps the resulting DOM (and, once, a screenshot).
//!
//! Order fields are untrusted, so the main check is that hostile values (HTML, script) end up
//! as literal text in the DOM and never as elements. The other checks cover what an operator
//! relies on: the order's fields are shown, a lookup by id works, and a missing or malformed
//! key gets a clear message. Chromium is not optional: when it is missing the tests fail and
//! say that `scripts/test` installs it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A hostile delivery name: an image whose error handler would change the title.
const HOSTILE_DELIVERY_NAME: &str = r#"<img src=x onerror="document.title='pwned'">"#;
/// A hostile item name: a script element.
const HOSTILE_ITEM_NAME: &str = "<script>document.title='pwned'</script>";
/// A hostile address that tries to close the table cell and add bold markup.
const HOSTILE_ADDRESS: &str = "Ploshad Mira 15</td><b>bold</b>";
/// A hostile customer id: an SVG element with an onload handler.
const HOSTILE_CUSTOMER_ID: &str = "<svg onload=\"document.title='pwned'\">";
/// A bank name that is already an HTML entity: it must show as `&amp;`, not as `&`.
const ENTITY_BANK: &str = "alpha &amp; omega";
/// A second item's brand that tries to break out of an attribute.
const HOSTILE_BRAND: &str = "\" onmouseover=\"document.title='pwned'\" x=\"";
/// Non-ASCII text must survive the round trip through Kafka, PostgreSQL and the page.
const UNICODE_CITY: &str = "Кирьят-Моцкин";

/// The elements the page itself creates (or has in its markup). Any other element in a dumped
/// DOM was injected by an order field.
const PAGE_ELEMENTS: &[&str] = &[
    "html", "head", "meta", "title", "link", "script", "body", "header", "a", "form", "label",
    "input", "button", "main", "div", "section", "h1", "h2", "h3", "p", "strong", "code",
    "noscript", "article", "dl", "dt", "dd", "span", "time", "table", "thead", "tbody", "tr", "th",
    "td",
];

/// The canonical uid, from `tests/data/canonical-order.json`.
const CANONICAL_UID: &str = "b563feb7b2b84b6test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_order_fields_render_as_literal_text() {
    require_chromium();
    let hostile_uid = unique_name("hostile");
    let hostile = hostile_order(&hostile_uid);
    let instance = RunningInstance::start(vec![
        serde_json::to_vec(&hostile)
            .unwrap_or_else(|error| panic!("cannot encode the hostile order: {error}")),
        CANONICAL.as_bytes().to_vec(),
    ])
    .await;
    let hostile_id = instance.order_id(&hostile_uid).await;

    let dom = render_dom(instance.port(), &hostile_uid).await;

    // Every hostile value is in the DOM as escaped text.
    for hostile_value in [
        HOSTILE_DELIVERY_NAME,
        HOSTILE_ITEM_NAME,
        HOSTILE_ADDRESS,
        HOSTILE_CUSTOMER_ID,
        ENTITY_BANK,
        HOSTILE_BRAND,
        UNICODE_CITY,
    ] {
        let escaped = escaped_text(hostile_value);
        assert!(
            dom.contains(&escaped),
            "the DOM does not show {hostile_value:?} as the text {escaped:?}:\n{dom}"
        );
    }
    assert!(dom.contains("&lt;img src=x onerror="), "{dom}");
    assert!(dom.contains("alpha &amp;amp; omega"), "{dom}");

    // No value became an element: only the page's own elements exist, and the only script is
    // the page's.
    let element_names = element_names(&dom);
    let injected: Vec<&String> = element_names
        .iter()
        .filter(|name| !PAGE_ELEMENTS.contains(&name.as_str()))
        .collect();
    assert!(
        injected.is_empty(),
        "elements {injected:?} were injected into the page:\n{dom}"
    );
    assert!(!dom.contains("<img"), "a live <img> element exists:\n{dom}");
    assert!(!dom.contains("<b>"), "a live <b> element exists:\n{dom}");
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "a script besides /app.js exists:\n{dom}"
    );
    assert!(dom.contains(r#"<script src="/app.js" defer=""></script>"#));

    // The title is the page's, not a hostile handler's.
    let title = page_title(&dom);
    assert!(!title.contains("pwned"), "the title is {title:?}");
    assert_eq!(title, format!("Order {hostile_uid} · orderstore"));

    // The order is shown: uid, id (from X-Order-Id), an item, the amount with its currency,
    // the delivery and payment sections and the items table.
    let amount = hostile["payment"]["amount"].as_i64().unwrap_or_default();
    for expected in [
        format!(">{hostile_uid}<"),
        format!(">id {hostile_id}<"),
        format!(">{amount} USD<"),
        ">Hand cream<".to_string(),
        ">Delivery<".to_string(),
        ">Payment<".to_string(),
        ">Items (3 items)<".to_string(),
        ">WBILMTESTTRACK<".to_string(),
    ] {
        assert!(dom.contains(&expected), "{expected:?} is missing:\n{dom}");
    }

    // The screenshot is kept for people to look at; it must be a real, non-blank image.
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-artifacts")
        .join("web-page.png");
    take_screenshot(instance.port(), &hostile_uid, &screenshot).await;
    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", screenshot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        screenshot.display()
    );
    assert!(
        png.len() > 30_000,
        "{} is only {} bytes: the page looks blank",
        screenshot.display(),
        png.len()
    );

    instance.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_finds_orders_by_id_and_explains_missing_and_malformed_keys() {
    require_chromium();
    let instance = RunningInstance::start(vec![CANONICAL.as_bytes().to_vec()]).await;
    let canonical_id = instance.order_id(CANONICAL_UID).await;

    // A search by id (all digits) finds the order.
    let by_id = render_dom(instance.port(), &canonical_id.to_string()).await;
    for expected in [
        format!(">{CANONICAL_UID}<"),
        format!(">id {canonical_id}<"),
        ">Mascaras<".to_string(),
        ">Vivienne Sabo<".to_string(),
        ">1817 USD<".to_string(),
        ">317 USD<".to_string(),
        ">30 %<".to_string(),
        ">Test Testov<".to_string(),
    ] {
        assert!(
            by_id.contains(&expected),
            "{expected:?} is missing:\n{by_id}"
        );
    }
    assert_eq!(
        page_title(&by_id),
        format!("Order {CANONICAL_UID} · orderstore")
    );

    // A missing uid and a missing id are said to be missing.
    let missing_uid = render_dom(instance.port(), "no-such-order").await;
    assert!(
        missing_uid.contains("No order with order_uid no-such-order"),
        "no not-found message:\n{missing_uid}"
    );
    let missing_id = canonical_id + 1_000_000;
    let missing_by_id = render_dom(instance.port(), &missing_id.to_string()).await;
    assert!(
        missing_by_id.contains(&format!("No order with id {missing_id}")),
        "no not-found message:\n{missing_by_id}"
    );

    // A malformed id is refused by the server (400), and its explanation is shown.
    let malformed = render_dom(instance.port(), "007").await;
    assert!(
        malformed.contains("malformed id: expected a positive integer such as 42"),
        "the server's error text is not shown:\n{malformed}"
    );

    instance.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_sums_up_the_rejects_and_shows_the_latest_as_text() {
    require_chromium();
    let instance = RunningInstance::start(vec![
        CANONICAL.as_bytes().to_vec(),
        b"<img src=x onerror=alert(1)>".to_vec(),
        br#"{"order_uid": "<script>alert(1)</script>"}"#.to_vec(),
        b"not json".to_vec(),
    ])
    .await;
    let dom = render_dom(instance.port(), "").await;
    for expected in [
        ">Rejected records<",
        ">3 recorded (no dead-letter topic is set).<",
        ">not_json<",
        ">Latest<",
    ] {
        assert!(dom.contains(expected), "{expected:?} is missing:\n{dom}");
    }
    // The latest rejects, newest first, with their offsets (1 to 3 of the one partition).
    let offsets: Vec<usize> = ["3", "2", "1"]
        .iter()
        .map(|offset| {
            dom.find(&format!("<td>0</td><td>{offset}</td>"))
                .unwrap_or_else(|| panic!("offset {offset} is missing:\n{dom}"))
        })
        .collect();
    assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]), "{dom}");
    let injected: Vec<String> = element_names(&dom)
        .into_iter()
        .filter(|name| !PAGE_ELEMENTS.contains(&name.as_str()))
        .collect();
    assert!(
        injected.is_empty(),
        "elements {injected:?} were injected:\n{dom}"
    );
    assert!(!dom.contains("<img"), "a live <img> element exists:\n{dom}");
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");
    instance.stop().await;
}

/// An orderstore instance with some orders ingested, serving HTTP on a free port.
struct RunningInstance {
    app: RunningApp,
}

impl RunningInstance {
    /// Produces `orders` to a fresh topic, starts the application on a fresh database and
    /// waits until everything is ingested.
    async fn start(orders: Vec<Vec<u8>>) -> RunningInstance {
        let TestBed {
            database,
            db,
            topic,
            partitions,
        } = TestBed::new(1).await;
        produce(&partitions[0], orders.into_iter().map(Some).collect()).await;
        let app = RunningApp::start(settings(&database, &topic, &[])).await;
        wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;
        RunningInstance { app }
    }

    /// The id the service gave the order with `uid`, read from `X-Order-Id` as the page does.
    async fn order_id(&self, uid: &str) -> i64 {
        let answer = http(self.port(), "GET", &format!("/orders/uid/{uid}")).await;
        assert_eq!(answer.status, 200, "order {uid} was not stored");
        answer
            .headers
            .get("x-order-id")
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no X-Order-Id for {uid}: {:?}", answer.headers))
    }

    /// The port it serves HTTP on.
    fn port(&self) -> u16 {
        self.app.http_port()
    }

    /// Stops the instance and checks that it stopped cleanly.
    async fn stop(self) {
        self.app.stop().await;
    }
}

/// The canonical order with hostile values in its free-text fields and three items, still
/// valid under the contract: only free text changes, and the sums are recomputed.
fn hostile_order(uid: &str) -> Value {
    let mut order: Value = serde_json::from_str(CANONICAL)
        .unwrap_or_else(|error| panic!("the canonical order is not JSON: {error}"));
    order["order_uid"] = json!(uid);
    order["customer_id"] = json!(HOSTILE_CUSTOMER_ID);
    order["delivery"]["name"] = json!(HOSTILE_DELIVERY_NAME);
    order["delivery"]["address"] = json!(HOSTILE_ADDRESS);
    order["delivery"]["city"] = json!(UNICODE_CITY);
    order["payment"]["transaction"] = json!(uid);
    order["payment"]["bank"] = json!(ENTITY_BANK);
    let track_number = order["track_number"].clone();
    let item = |name: &str, brand: &str, price: i64, sale: i64, chrt_id: i64, rid: &str| {
        json!({
            "chrt_id": chrt_id,
            "track_number": track_number,
            "price": price,
            "rid": rid,
            "name": name,
            "sale": sale,
            "size": "M",
            "total_price": price * (100 - sale) / 100,
            "nm_id": chrt_id + 1,
            "brand": brand,
            "status": 202
        })
    };
    let items = vec![
        item(
            HOSTILE_ITEM_NAME,
            "Vivienne Sabo",
            453,
            30,
            9934930,
            "ab4219087a764ae0btest",
        ),
        item(
            "Hand cream",
            HOSTILE_BRAND,
            1200,
            0,
            9934931,
            "ab4219087a764ae0btes2",
        ),
        item(
            "Lip balm, 2 pack",
            "Natura Siberica",
            999,
            15,
            9934932,
            "ab4219087a764ae0btes3",
        ),
    ];
    let goods_total: i64 = items
        .iter()
        .map(|item| item["total_price"].as_i64().unwrap_or_default())
        .sum();
    let delivery_cost = order["payment"]["delivery_cost"]
        .as_i64()
        .unwrap_or_default();
    let custom_fee = order["payment"]["custom_fee"].as_i64().unwrap_or_default();
    order["items"] = Value::Array(items);
    order["payment"]["goods_total"] = json!(goods_total);
    order["payment"]["amount"] = json!(goods_total + delivery_cost + custom_fee);
    order
}

/// `text` as an HTML serializer writes a text node: `&`, `<`, `>` escaped, quotes as they are.
fn escaped_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The names of every element in a serialized DOM. Text nodes escape `<`, so every `<` that
/// is followed by a letter opens an element (`noscript` holds its markup as text, but only
/// the page's own).
fn element_names(dom: &str) -> BTreeSet<String> {
    dom.split('<')
        .skip(1)
        .filter_map(|after_bracket| {
            let name: String = after_bracket
                .chars()
                .take_while(|character| character.is_ascii_alphanumeric())
                .collect();
            (!name.is_empty()).then(|| name.to_ascii_lowercase())
        })
        .collect()
}

/// The document title in a serialized DOM.
fn page_title(dom: &str) -> String {
    dom.split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(title, _)| title.to_string())
        .unwrap_or_else(|| panic!("the page has no title:\n{dom}"))
}

/// The page's deep link for `query` (an id or an order_uid, both URL-safe).
fn page_url(port: u16, query: &str) -> String {
    format!("http://127.0.0.1:{port}/?q={query}")
}

/// The DOM after the page has looked `query` up.
async fn render_dom(port: u16, query: &str) -> String {
    let url = page_url(port, query);
    let stdout = in_blocking_thread(move || run_chromium(&["--dump-dom".to_string()], &url)).await;
    String::from_utf8(stdout).unwrap_or_else(|error| panic!("the DOM is not UTF-8: {error}"))
}

/// Saves a 1280x1400 screenshot of the page after it has looked `query` up.
async fn take_screenshot(port: u16, query: &str, path: &Path) {
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(folder)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", folder.display()));
    // An old screenshot must not pass for a new one.
    if path.exists() {
        std::fs::remove_file(path)
            .unwrap_or_else(|error| panic!("cannot remove {}: {error}", path.display()));
    }
    let url = page_url(port, query);
    let flags = [
        format!("--screenshot={}", path.display()),
        "--window-size=1280,1400".to_string(),
    ];
    in_blocking_thread(move || run_chromium(&flags, &url)).await;
    assert!(path.is_file(), "Chromium wrote no {}", path.display());
}
