//! The contract's field rules, applied to a parsed [`UncheckedOrder`] one by one; the first
//! broken rule is the rejection.

use chrono::{DateTime, Utc};

use super::{Rejection, UncheckedOrder};

/// How far in the future `date_created` may lie, to allow for clock skew between producers.
pub const MAX_FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Most items an order may carry.
pub const MAX_ITEMS: usize = 1000;

/// Longest `order_uid` and `track_number`, in characters.
pub const MAX_KEY_CHARS: usize = 64;

impl UncheckedOrder<'_> {
    /// Applies every field rule of the contract; returns the parsed `date_created`.
    pub(crate) fn check(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, Rejection> {
        let mut rules = Checker::default();
        rules.key("order_uid", &self.order_uid, true);
        rules.key("track_number", &self.track_number, false);
        rules.not_blank("entry", &self.entry);

        let delivery = &self.delivery;
        rules.not_blank("delivery.name", &delivery.name);
        rules.phone("delivery.phone", &delivery.phone);
        rules.not_blank("delivery.zip", &delivery.zip);
        rules.not_blank("delivery.city", &delivery.city);
        rules.not_blank("delivery.address", &delivery.address);
        rules.not_blank("delivery.region", &delivery.region);
        rules.email("delivery.email", &delivery.email);

        let payment = &self.payment;
        rules.not_blank("payment.transaction", &payment.transaction);
        rules.no_nul("payment.request_id", &payment.request_id);
        rules.currency("payment.currency", &payment.currency);
        rules.not_blank("payment.provider", &payment.provider);
        rules.at_least("payment.amount", payment.amount, 0);
        rules.at_least("payment.payment_dt", payment.payment_dt, 1);
        rules.not_blank("payment.bank", &payment.bank);
        rules.at_least("payment.delivery_cost", payment.delivery_cost, 0);
        rules.at_least("payment.goods_total", payment.goods_total, 0);
        rules.at_least("payment.custom_fee", payment.custom_fee, 0);

        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            rules.fail(
                "items",
                format!(
                    "must hold 1 to {MAX_ITEMS} items, holds {}",
                    self.items.len()
                ),
            );
        }
        let mut goods_total: i128 = 0;
        for (index, item) in self.items.iter().enumerate() {
            if rules.failed() {
                break;
            }
            let path = |field| ItemPath { index, field };
            rules.at_least(path("chrt_id"), item.chrt_id, 1);
            if item.track_number != self.track_number {
                rules.fail(path("track_number"), "must equal the order's track_number");
            }
            rules.at_least(path("price"), item.price, 0);
            rules.not_blank(path("rid"), &item.rid);
            rules.not_blank(path("name"), &item.name);
            if !(0..=100).contains(&item.sale) {
                rules.fail(
                    path("sale"),
                    format!("must be 0 to 100 (a percent), is {}", item.sale),
                );
            }
            rules.not_blank(path("size"), &item.size);
            if !rules.failed() {
                let expected = i128::from(item.price) * i128::from(100 - item.sale) / 100;
                if i128::from(item.total_price) != expected {
                    rules.fail(
                        path("total_price"),
                        format!(
                            "must equal price * (100 - sale) / 100 = {expected}, is {}",
                            item.total_price
                        ),
                    );
                }
            }
            rules.at_least(path("nm_id"), item.nm_id, 1);
            rules.not_blank(path("brand"), &item.brand);
            rules.at_least(path("status"), item.status, 0);
            goods_total += i128::from(item.total_price);
        }
        if !rules.failed() && i128::from(payment.goods_total) != goods_total {
            rules.fail(
                "payment.goods_total",
                format!(
                    "must equal the sum of items[].total_price = {goods_total}, is {}",
                    payment.goods_total
                ),
            );
        }
        if !rules.failed() {
            let expected = i128::from(payment.goods_total)
                + i128::from(payment.delivery_cost)
                + i128::from(payment.custom_fee);
            if i128::from(payment.amount) != expected {
                rules.fail(
                    "payment.amount",
                    format!(
                        "must equal goods_total + delivery_cost + custom_fee = {expected}, is {}",
                        payment.amount
                    ),
                );
            }
        }

        rules.not_blank("locale", &self.locale);
        rules.no_nul("internal_signature", &self.internal_signature);
        rules.not_blank("customer_id", &self.customer_id);
        rules.not_blank("delivery_service", &self.delivery_service);
        rules.not_blank("shardkey", &self.shardkey);
        rules.at_least("sm_id", self.sm_id, 0);
        rules.not_blank("oof_shard", &self.oof_shard);
        if let Some(rejection) = rules.first {
            return Err(rejection);
        }

        let date_created = DateTime::parse_from_rfc3339(&self.date_created)
            .map_err(|error| {
                Rejection::new(
                    "date_created",
                    format!("must be an RFC 3339 timestamp ({error})"),
                )
            })?
            .with_timezone(&Utc);
        if now < DateTime::<Utc>::MAX_UTC - MAX_FUTURE_SKEW && date_created > now + MAX_FUTURE_SKEW
        {
            return Err(Rejection::new(
                "date_created",
                "must not be more than 5 minutes in the future",
            ));
        }
        Ok(date_created)
    }
}

/// A field's path, made into text only when a rule about it is broken: valid orders, the
/// common case, never pay for formatting `items[N].field`.
trait Path: std::fmt::Display + Copy {}

impl Path for &str {}

/// The path of an item's field.
#[derive(Clone, Copy)]
struct ItemPath {
    index: usize,
    field: &'static str,
}

impl std::fmt::Display for ItemPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "items[{}].{}", self.index, self.field)
    }
}

impl Path for ItemPath {}

/// Collects the first broken rule; later checks are skipped once one has failed.
#[derive(Default)]
struct Checker {
    first: Option<Rejection>,
}

impl Checker {
    fn failed(&self) -> bool {
        self.first.is_some()
    }

    fn fail(&mut self, path: impl Path, rule: impl Into<String>) {
        if self.first.is_none() {
            self.first = Some(Rejection::new(path.to_string(), rule));
        }
    }

    fn no_nul(&mut self, path: impl Path, value: &str) -> bool {
        if value.contains('\0') {
            self.fail(path, "must not contain a NUL character");
            return false;
        }
        true
    }

    fn not_blank(&mut self, path: impl Path, value: &str) {
        if self.no_nul(path, value) && value.trim().is_empty() {
            self.fail(path, "must not be empty or white space only");
        }
    }

    fn key(&mut self, path: impl Path, value: &str, url_safe: bool) {
        if !self.no_nul(path, value) {
            return;
        }
        let n_chars = value.chars().count();
        if !(1..=MAX_KEY_CHARS).contains(&n_chars) {
            self.fail(
                path,
                format!("must be 1 to {MAX_KEY_CHARS} characters, is {n_chars}"),
            );
        } else if url_safe && !is_order_uid(value) {
            self.fail(path, "must hold only ASCII letters, digits, '-' and '_'");
        }
    }

    fn phone(&mut self, path: impl Path, value: &str) {
        let digits = value.strip_prefix('+').unwrap_or("");
        let ok = value.starts_with('+')
            && (7..=15).contains(&digits.len())
            && digits.bytes().all(|byte| byte.is_ascii_digit());
        if !ok {
            self.fail(path, "must be '+' followed by 7 to 15 digits");
        }
    }

    fn email(&mut self, path: impl Path, value: &str) {
        let ok = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !value.chars().any(char::is_whitespace)
                    && !value.contains('\0')
            }
            None => false,
        };
        if !ok {
            self.fail(
                path,
                "must hold one '@', a non-empty local part, a domain with a '.', and no spaces",
            );
        }
    }

    fn currency(&mut self, path: impl Path, value: &str) {
        if value.len() != 3 || !value.bytes().all(|byte| byte.is_ascii_uppercase()) {
            self.fail(path, "must be exactly 3 ASCII upper-case letters");
        }
    }

    fn at_least(&mut self, path: impl Path, value: i64, minimum: i64) {
        if value < minimum {
            self.fail(path, format!("must be >= {minimum}, is {value}"));
        }
    }
}

/// Whether `value` has the form of an `order_uid`: 1 to 64 ASCII letters, digits, `-`, `_`.
/// HTTP uses the same test to answer 400 for a uid no order can have.
pub fn is_order_uid(value: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}
