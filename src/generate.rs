//! Random orders that satisfy the contract, for tests, demos and benchmarks: consistent sums,
//! 1 to 5 items, `date_created` within the last hour before `now`.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::order::{Delivery, Item, OrderDoc, Payment};

const NAMES: &[&str] = &[
    "Ivan Petrov",
    "Anna Smirnova",
    "John Smith",
    "Maria Garcia",
    "Li Wei",
];
const CITIES: &[&str] = &["Moscow", "Kazan", "Tel Aviv", "Berlin", "Kiryat Mozkin"];
const BRANDS: &[&str] = &["Vivienne Sabo", "Nivea", "Adidas", "Lego", "Xiaomi"];
const GOODS: &[&str] = &["Mascaras", "Sneakers", "Phone case", "Teapot", "Backpack"];
const CURRENCIES: &[&str] = &["USD", "EUR", "RUB"];

/// A random valid order with a unique-looking `order_uid`.
pub fn random_order(rng: &mut impl Rng, now: DateTime<Utc>) -> OrderDoc {
    let order_uid = format!("{:016x}{:08x}", rng.gen::<u64>(), rng.gen::<u32>());
    let track_number = format!("WBTRACK{:08}", rng.gen_range(0..100_000_000));
    let n_items = rng.gen_range(1..=5);
    let items: Vec<Item> = (0..n_items)
        .map(|_| {
            let price = rng.gen_range(1..100_000);
            let sale = rng.gen_range(0..=90);
            Item {
                chrt_id: rng.gen_range(1..10_000_000),
                track_number: track_number.clone(),
                price,
                rid: format!("{:016x}", rng.gen::<u64>()),
                name: pick(rng, GOODS),
                sale,
                size: rng.gen_range(0..50).to_string(),
                total_price: price * (100 - sale) / 100,
                nm_id: rng.gen_range(1..10_000_000),
                brand: pick(rng, BRANDS),
                status: 202,
            }
        })
        .collect();
    let goods_total = items.iter().map(|item| item.total_price).sum();
    let delivery_cost = rng.gen_range(0..2_000);
    let created = now - chrono::Duration::seconds(rng.gen_range(0..3_600));
    OrderDoc {
        order_uid: order_uid.clone(),
        track_number,
        entry: "WBIL".into(),
        delivery: Delivery {
            name: pick(rng, NAMES),
            phone: format!("+7{:010}", rng.gen_range(0..10_000_000_000_i64)),
            zip: rng.gen_range(100_000..999_999).to_string(),
            city: pick(rng, CITIES),
            address: format!("Lenina {}", rng.gen_range(1..200)),
            region: "Region".into(),
            email: format!("user{}@example.com", rng.gen_range(0..1_000_000)),
        },
        payment: Payment {
            transaction: order_uid,
            request_id: String::new(),
            currency: pick(rng, CURRENCIES),
            provider: "wbpay".into(),
            amount: goods_total + delivery_cost,
            payment_dt: created.timestamp(),
            bank: "alpha".into(),
            delivery_cost,
            goods_total,
            custom_fee: 0,
        },
        items,
        locale: "en".into(),
        internal_signature: String::new(),
        customer_id: format!("customer{}", rng.gen_range(0..10_000)),
        delivery_service: "meest".into(),
        shardkey: rng.gen_range(0..10).to_string(),
        sm_id: rng.gen_range(0..100),
        date_created: created.to_rfc3339_opts(SecondsFormat::Secs, true),
        oof_shard: "1".into(),
    }
}

fn pick(rng: &mut impl Rng, choices: &[&str]) -> String {
    choices.choose(rng).copied().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Order;

    #[test]
    fn generated_orders_pass_the_contract() {
        let mut rng = rand::thread_rng();
        let now = Utc::now();
        for _ in 0..500 {
            let doc = random_order(&mut rng, now);
            let raw = serde_json::to_vec(&doc).unwrap_or_default();
            if let Err(rejection) = Order::parse(&raw, now, 1 << 20) {
                panic!("generated order rejected: {rejection}");
            }
        }
    }
}
