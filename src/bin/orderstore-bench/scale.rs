//! `scale`: what each cost does as the store grows. One database is grown to each size in turn
//! with generated orders (COPY, not Kafka), and at each size the benchmark measures:
//!
//! - ingest of a batch of new orders from Kafka (200,000 by default), against that size's COPY
//!   ceiling (the same orders copied into the same table) and against a fixed reference: COPY
//!   of the same orders into an empty table of only (id, order_uid, body jsonb) with its uid
//!   index, which does not move with orderstore's schema or the store's size;
//! - the restore of the newest 1,000,000 orders, plain and with `MEMORY_COMPRESSION=zstd`,
//!   and of every order when the store holds more than a million and at most three;
//! - HTTP with the newest 1,000,000 in memory: wrk by uid, oha by id at 5,000 requests/s, and
//!   oha at 1,000 requests/s on orders memory does not hold, which PostgreSQL answers;
//! - bytes per order on disk (heap, TOAST, each index), WAL per order inserted, and resident
//!   memory per order, all against the producer's JSON.
//!
//! The batch is removed again after each ingest, so every size is measured at its size. It
//! prints one table and writes it, with a chart of each measure against the size, to `out`.

use std::path::PathBuf;

use anyhow::Context;
use orderstore::config::Settings;

use crate::ceiling::{copy_orders, parse_documents};
use crate::ingest::{fetch_all, fill_topic, run_orderstore, Backlog};
use crate::measure::{connect, create_database, settle, Phase};
use crate::scale_plot::{svg, Panel, Series};
use crate::scale_serve::{self, HttpFigures, RestoreFigures};
use crate::scale_store::{grow, minimal_copy, remove_batch, table_bytes, GrownDates, TableBytes};

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleRun {
    /// The sizes, in orders stored, ascending.
    pub sizes: Vec<u64>,
    /// Orders ingested at each size.
    pub batch: u64,
    /// Orders in memory for the restore and HTTP (the newest).
    pub in_memory: u64,
    /// Where the table and the chart go.
    pub out: PathBuf,
}

/// Everything measured at one size.
#[derive(Debug, Clone, Default)]
struct SizeFigures {
    size: u64,
    disk: TableBytes,
    copy_rate: f64,
    wal_per_order: f64,
    minimal_rate: f64,
    orderstore_rate: f64,
    restore: RestoreFigures,
    restore_zstd: RestoreFigures,
    restore_all: Option<RestoreFigures>,
    http: HttpFigures,
}

/// Runs the benchmark.
pub async fn scale(mut settings: Settings, run: ScaleRun) -> anyhow::Result<()> {
    let n_partitions = 8;
    let Backlog {
        topic,
        client,
        partitions,
        ..
    } = fill_topic(&mut settings, run.batch, n_partitions).await?;
    let documents = fetch_all(&client, &topic, &partitions, 2, &settings).await?;
    let json_per_order = documents
        .iter()
        .map(|document| document.value.len())
        .sum::<usize>() as f64
        / documents.len().max(1) as f64;
    let admin = settings.database.url.clone();
    let admin_client = connect(&admin).await?;
    let name = format!("{topic}_scale");
    let database = create_database(&admin, &name).await?;
    std::fs::create_dir_all(&run.out)?;
    let work = tempdir(&topic)?;

    let mut figures: Vec<SizeFigures> = Vec::new();
    let mut stored = 0;
    let largest = run.sizes.iter().copied().max().unwrap_or(0);
    let dates = GrownDates::new(chrono::Utc::now(), largest);
    for &size in &run.sizes {
        eprintln!("growing the store to {size} orders");
        grow(&database, &topic, n_partitions, (stored, size), dates).await?;
        stored = size;
        settle(&admin_client, None).await?;
        let mut at = SizeFigures {
            size,
            disk: table_bytes(&database).await?,
            ..SizeFigures::default()
        };

        let phase = Phase::start(&admin_client).await?;
        copy_orders(
            &database,
            &topic,
            parse_documents(&documents),
            settings.ingest.batch_writers,
        )
        .await?;
        let copy = phase
            .report_cost(&format!("COPY ceiling at {size}"), &admin_client, run.batch)
            .await?;
        at.copy_rate = run.batch as f64 / copy.seconds;
        at.wal_per_order = copy.wal_per_order;
        remove_batch(&database).await?;
        settle(&admin_client, None).await?;

        at.minimal_rate = run.batch as f64 / minimal_copy(&database, &documents).await?;
        settle(&admin_client, None).await?;

        let mut app_settings = settings.clone();
        app_settings.database.url = database.clone();
        app_settings.kafka.group_id = Some(format!("orderstore-{name}-{size}"));
        let ingest = run_orderstore(
            app_settings,
            &topic,
            run.batch,
            size as i64,
            &admin_client,
            &format!("orderstore at {size}"),
        )
        .await?;
        at.orderstore_rate = run.batch as f64 / ingest.seconds;
        remove_batch(&database).await?;
        settle(&admin_client, None).await?;

        at.restore = scale_serve::restore(&name, run.in_memory, "none")?;
        at.restore_zstd = scale_serve::restore(&name, run.in_memory, "zstd")?;
        if size > run.in_memory && size <= 3 * run.in_memory {
            at.restore_all = Some(scale_serve::restore(&name, size, "none")?);
        }
        at.http = scale_serve::http(&settings, &database, run.in_memory, &work).await?;
        remove_batch(&database).await?;
        eprintln!("{at:?}");
        figures.push(at);
    }
    settle(&admin_client, Some(name)).await?;
    let _ = std::fs::remove_dir_all(&work);

    let table = table(&figures, &run, json_per_order);
    println!("{table}");
    std::fs::write(run.out.join("scale.md"), &table)?;
    let chart = chart(&figures, json_per_order);
    std::fs::write(run.out.join("scale.svg"), chart)?;
    eprintln!(
        "wrote {} and {}",
        run.out.join("scale.md").display(),
        run.out.join("scale.svg").display()
    );
    Ok(())
}

fn tempdir(topic: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("orderstore-{topic}-scale"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The table, as Markdown: one column per size.
fn table(figures: &[SizeFigures], run: &ScaleRun, json: f64) -> String {
    let (batch, in_memory) = (run.batch, run.in_memory);
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&SizeFigures) -> String| {
        rows.push((name.to_string(), figures.iter().map(cell).collect()));
    };
    let per_order = |bytes: i64, at: &SizeFigures| bytes as f64 / at.disk.orders.max(1) as f64;
    row(&format!("ingest of {batch} orders, orders/s"), &|at| {
        format!("{:.0}", at.orderstore_rate)
    });
    row("... / this size's COPY ceiling", &|at| {
        format!("{:.2}", at.orderstore_rate / at.copy_rate)
    });
    row("... / minimal-schema COPY (fixed reference)", &|at| {
        format!("{:.2}", at.orderstore_rate / at.minimal_rate)
    });
    row("COPY ceiling, orders/s", &|at| {
        format!("{:.0}", at.copy_rate)
    });
    row("minimal-schema COPY, orders/s", &|at| {
        format!("{:.0}", at.minimal_rate)
    });
    row("WAL per order inserted, bytes", &|at| {
        format!("{:.0}", at.wal_per_order)
    });
    row(
        "restore of the newest in memory, orders/s (seconds)",
        &|at| format!("{:.0} ({:.2} s)", at.restore.rate, at.restore.seconds),
    );
    row("... with zstd, orders/s", &|at| {
        format!("{:.0}", at.restore_zstd.rate)
    });
    row("restore of all (up to 3 × in memory), orders/s", &|at| {
        at.restore_all
            .map_or("-".into(), |all| format!("{:.0}", all.rate))
    });
    row("resident memory per order, bytes (/ JSON)", &|at| {
        format!(
            "{:.0} ({:.2})",
            at.restore.resident_per_order,
            at.restore.resident_per_order / json
        )
    });
    row("... with zstd (/ JSON)", &|at| {
        format!(
            "{:.0} ({:.2})",
            at.restore_zstd.resident_per_order,
            at.restore_zstd.resident_per_order / json
        )
    });
    row("PostgreSQL bytes per order, all (/ JSON)", &|at| {
        let total = per_order(at.disk.total(), at);
        format!("{total:.0} ({:.2})", total / json)
    });
    row("... heap", &|at| {
        format!("{:.0}", per_order(at.disk.heap, at))
    });
    row("... TOAST", &|at| {
        format!("{:.0}", per_order(at.disk.toast, at))
    });
    let index_names: Vec<String> = figures
        .first()
        .map(|at| {
            at.disk
                .indexes
                .iter()
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    for index in &index_names {
        row(&format!("... index {index}"), &|at| {
            let bytes = at
                .disk
                .indexes
                .iter()
                .find(|(name, _)| name == index)
                .map_or(0, |(_, bytes)| *bytes);
            format!("{:.0}", per_order(bytes, at))
        });
    }
    row("HTTP by uid (wrk), requests/s", &|at| {
        format!("{:.0}", at.http.by_uid_rate)
    });
    row("... p99, ms", &|at| format!("{:.2}", at.http.by_uid_p99_ms));
    row("HTTP by id at 5,000/s (oha), p99 ms", &|at| {
        format!("{:.2}", at.http.by_id_p99_ms)
    });
    row("HTTP missing memory at 1,000/s, p99 ms", &|at| {
        at.http
            .miss_p99_ms
            .map_or("-".into(), |p99| format!("{p99:.2}"))
    });
    let mut text = format!(
        "scale benchmark: producer's JSON {json:.0} bytes per order; {batch} orders ingested at \
         each size; the newest {in_memory} in memory\n\n| measure |"
    );
    for at in figures {
        text.push_str(&format!(" {} orders |", at.size));
    }
    text.push_str("\n|---|");
    text.push_str(&"---|".repeat(figures.len()));
    text.push('\n');
    for (name, cells) in rows {
        text.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    text
}

/// The chart: ingest, restore, bytes per order, HTTP tails.
fn chart(figures: &[SizeFigures], json: f64) -> String {
    let series = |name: &str, value: &dyn Fn(&SizeFigures) -> Option<f64>| Series {
        name: name.to_string(),
        points: figures
            .iter()
            .map(|at| (at.size as f64, value(at)))
            .collect(),
    };
    let per_order = |bytes: i64, at: &SizeFigures| bytes as f64 / at.disk.orders.max(1) as f64;
    let panels = [
        Panel {
            title: "Ingest from Kafka".into(),
            unit: "orders/s".into(),
            series: vec![
                series("orderstore", &|at| Some(at.orderstore_rate)),
                series("COPY ceiling, same table", &|at| Some(at.copy_rate)),
                series("COPY, minimal table (fixed reference)", &|at| {
                    Some(at.minimal_rate)
                }),
            ],
        },
        Panel {
            title: "Restore of the newest in memory".into(),
            unit: "orders/s".into(),
            series: vec![
                series("plain", &|at| Some(at.restore.rate)),
                series("zstd", &|at| Some(at.restore_zstd.rate)),
            ],
        },
        Panel {
            title: "Bytes per order".into(),
            unit: "bytes".into(),
            series: vec![
                series("PostgreSQL, all", &|at| {
                    Some(per_order(at.disk.total(), at))
                }),
                series("WAL per insert", &|at| Some(at.wal_per_order)),
                series("resident memory, plain", &|at| {
                    Some(at.restore.resident_per_order)
                }),
                series("resident memory, zstd", &|at| {
                    Some(at.restore_zstd.resident_per_order)
                }),
                series("producer's JSON", &|_| Some(json)),
            ],
        },
        Panel {
            title: "HTTP p99".into(),
            unit: "ms".into(),
            series: vec![
                series("by uid, wrk at full speed", &|at| {
                    Some(at.http.by_uid_p99_ms)
                }),
                series("by id, 5,000/s", &|at| Some(at.http.by_id_p99_ms)),
                series("not in memory, 1,000/s", &|at| at.http.miss_p99_ms),
            ],
        },
    ];
    svg("orderstore against the store's size", &panels)
}
