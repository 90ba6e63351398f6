//! `orderstore targets`: request targets for a load test, made of orders that exist. A load
//! tool asking for random ids measures mostly 404s; this command samples stored orders of
//! `KAFKA_TOPIC` from `DATABASE_URL` and prints them in vegeta's http format (a request line,
//! the `Authorization` header when the service asks for one, a blank line between targets)
//! or as plain URLs, one a line, for oha's `--urls-from-file`.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Settings;
use crate::store::postgres::targets::SampledOrder;
use crate::store::postgres::Database;

/// Which route a target asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetsBy {
    /// `/orders/{id}`.
    Id,
    /// `/orders/uid/{order_uid}`.
    Uid,
    /// Both, alternating: the first target by id, the second by uid, and so on.
    Mixed,
}

/// How the targets are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetsFormat {
    /// vegeta's http format, for `vegeta attack -targets=FILE`.
    Vegeta,
    /// One URL a line, for `oha --urls-from-file FILE`.
    Urls,
}

/// What `orderstore targets` was asked, before the defaults are filled in from the settings.
#[derive(Debug)]
pub struct TargetsOptions {
    /// How many targets to print.
    pub count: u32,
    /// Which route each target asks.
    pub by: TargetsBy,
    /// The service's base URL; none means this machine's `HTTP_ADDR` port.
    pub url: Option<String>,
    /// How the targets are printed.
    pub format: TargetsFormat,
}

/// Prints the targets on stdout. Exits 1 with the reason when the topic has no stored order;
/// when it has fewer than asked, prints those and says so on stderr.
pub async fn targets(settings: &Settings, options: TargetsOptions) -> anyhow::Result<ExitCode> {
    let database = Database::new(
        settings.database.url.clone(),
        settings.database.tls.clone(),
        1,
        &settings.kafka.topic,
    );
    let sampled = database.sample_orders(i64::from(options.count)).await;
    database.close();
    let orders = sampled?;
    let topic = &settings.kafka.topic;
    if orders.is_empty() {
        eprintln!(
            "orderstore targets: no order of topic {topic} is stored in the database of \
             DATABASE_URL, so there is nothing to target (orderstore produce --count N makes some)"
        );
        return Ok(ExitCode::FAILURE);
    }
    if orders.len() < options.count as usize {
        eprintln!(
            "orderstore targets: only {} orders of topic {topic} are stored; printing {} \
             targets, not {}",
            orders.len(),
            orders.len(),
            options.count
        );
    }
    let base_url = options
        .url
        .unwrap_or_else(|| super::local_service_url(settings))
        .trim_end_matches('/')
        .to_owned();
    let token = super::first_http_token();
    let printed = render_targets(
        &orders,
        options.by,
        &base_url,
        token.as_deref(),
        options.format,
    );
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(printed.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `orderstore targets | head` closes the pipe early; what was wanted was printed.
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The targets as text: in vegeta's format, each target's request line, then its header
/// line when there is a token, with a blank line between targets; as URLs, one a line.
fn render_targets(
    orders: &[SampledOrder],
    by: TargetsBy,
    base_url: &str,
    token: Option<&str>,
    format: TargetsFormat,
) -> String {
    let urls = orders.iter().enumerate().map(|(index, order)| {
        let by_id = match by {
            TargetsBy::Id => true,
            TargetsBy::Uid => false,
            TargetsBy::Mixed => index % 2 == 0,
        };
        if by_id {
            format!("{base_url}/orders/{}", order.id)
        } else {
            format!("{base_url}/orders/uid/{}", order.order_uid)
        }
    });
    match format {
        TargetsFormat::Urls => urls.map(|url| url + "\n").collect(),
        TargetsFormat::Vegeta => urls
            .map(|url| match token {
                Some(token) => format!("GET {url}\nAuthorization: Bearer {token}\n"),
                None => format!("GET {url}\n"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_orders() -> Vec<SampledOrder> {
        vec![
            SampledOrder {
                id: 7,
                order_uid: "b563feb7b2b84b6test".into(),
            },
            SampledOrder {
                id: 42,
                order_uid: "a1".into(),
            },
        ]
    }

    #[test]
    fn vegeta_targets_have_the_header_under_each_request_line_and_a_blank_line_between() {
        let printed = render_targets(
            &two_orders(),
            TargetsBy::Mixed,
            "http://127.0.0.1:8081",
            Some("secret-token"),
            TargetsFormat::Vegeta,
        );
        assert_eq!(
            printed,
            "GET http://127.0.0.1:8081/orders/7\nAuthorization: Bearer secret-token\n\n\
             GET http://127.0.0.1:8081/orders/uid/a1\nAuthorization: Bearer secret-token\n"
        );
    }

    #[test]
    fn vegeta_targets_without_a_token_have_no_header() {
        let printed = render_targets(
            &two_orders(),
            TargetsBy::Uid,
            "https://orders.example",
            None,
            TargetsFormat::Vegeta,
        );
        assert_eq!(
            printed,
            "GET https://orders.example/orders/uid/b563feb7b2b84b6test\n\n\
             GET https://orders.example/orders/uid/a1\n"
        );
    }

    #[test]
    fn url_targets_are_one_a_line_without_headers() {
        let printed = render_targets(
            &two_orders(),
            TargetsBy::Id,
            "http://localhost:8081",
            Some("secret-token"),
            TargetsFormat::Urls,
        );
        assert_eq!(
            printed,
            "http://localhost:8081/orders/7\nhttp://localhost:8081/orders/42\n"
        );
    }
}
