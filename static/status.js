// The status page: reads /status.json every 1.5 s and shows it. Every figure goes into the
// page as text (textContent), never as markup: reject reasons and instance ids come from
// outside. When the server asks for a bearer token (401), the page asks for it once and keeps
// it for this tab, under the same key as the search page, so one token serves both.

"use strict";

(function () {
  const REFRESH_EVERY_MS = 1500;
  const TOKEN_KEY = "orderstore.token";
  const CHART_SECONDS = 900;
  const SERIES = [
    { name: "consumed", color: "#3556c8" },
    { name: "stored", color: "#12a150" },
    { name: "rejected", color: "#d92d20" },
  ];

  let memoryToken = null;
  let waitingForToken = false;

  function storedToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (storageError) {
      return null;
    }
  }

  function currentToken() {
    return storedToken() || memoryToken;
  }

  function storeToken(token) {
    memoryToken = token;
    try {
      window.sessionStorage.setItem(TOKEN_KEY, token);
    } catch (storageError) {
      // Storage refused: the token lasts until the page reloads.
    }
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function element(tagName, className, text) {
    const node = document.createElement(tagName);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function setText(id, text, bad) {
    const node = byId(id);
    node.textContent = text === null || text === undefined ? "–" : String(text);
    node.classList.toggle("is-bad", Boolean(bad));
  }

  function number(value, digits) {
    if (typeof value !== "number") {
      return "–";
    }
    return value.toLocaleString("en-US", { maximumFractionDigits: digits || 0 });
  }

  /** A table of `rows` (arrays of cells: text, or a node) under `headings`. */
  function table(headings, rows) {
    const result = element("table", "items-table");
    const head = element("tr");
    for (const heading of headings) {
      head.appendChild(element("th", null, heading));
    }
    const thead = element("thead");
    thead.appendChild(head);
    result.appendChild(thead);
    const body = element("tbody");
    for (const cells of rows) {
      const row = element("tr");
      for (const cell of cells) {
        const td = element("td");
        if (cell instanceof Node) {
          td.appendChild(cell);
        } else {
          td.textContent = cell === null || cell === undefined ? "–" : String(cell);
        }
        row.appendChild(td);
      }
      body.appendChild(row);
    }
    result.appendChild(body);
    const scroller = element("div", "table-scroller");
    scroller.appendChild(result);
    return scroller;
  }

  function replace(id, child) {
    const node = byId(id);
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
    node.appendChild(child);
  }

  function askForToken(refused) {
    if (waitingForToken) {
      return;
    }
    waitingForToken = true;
    const box = element("form", "message message-warning token-form");
    box.appendChild(
      element("p", "message-title", refused ? "That token is not accepted." : "This orderstore needs a token.")
    );
    box.appendChild(element("p", null, "Paste a bearer token from HTTP_AUTH_TOKENS. It is kept for this tab only."));
    const input = element("input", "search-input token-input");
    input.type = "password";
    input.id = "token-input";
    input.setAttribute("aria-label", "Bearer token");
    box.appendChild(input);
    box.appendChild(element("button", "search-button", "Use token"));
    box.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (token !== "") {
        storeToken(token);
        waitingForToken = false;
        replace("status-message", element("span", null, ""));
        refresh();
      }
    });
    replace("status-message", box);
  }

  /** Draws the per-second samples of the last 15 minutes, one line per series. */
  function drawChart(samples) {
    const canvas = byId("ingest-chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 900;
    const height = canvas.clientHeight || 220;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    const left = 56;
    const bottom = 20;
    const top = 10;
    const plotWidth = width - left - 10;
    const plotHeight = height - top - bottom;
    let highest = 1;
    for (const sample of samples) {
      for (const series of SERIES) {
        highest = Math.max(highest, sample[series.name]);
      }
    }
    const style = window.getComputedStyle(document.body);
    const muted = style.getPropertyValue("--text-muted").trim() || "#5d6778";
    const grid = style.getPropertyValue("--border").trim() || "#dfe3ea";
    context.font = "11px system-ui, sans-serif";
    context.lineWidth = 1;
    for (let step = 0; step <= 4; step += 1) {
      const y = top + plotHeight - (plotHeight * step) / 4;
      context.strokeStyle = grid;
      context.beginPath();
      context.moveTo(left, y);
      context.lineTo(left + plotWidth, y);
      context.stroke();
      context.fillStyle = muted;
      context.fillText(number((highest * step) / 4, 1) + "/s", 4, y + 4);
    }
    context.fillText("−15 min", left, height - 4);
    context.fillText("now", left + plotWidth - 22, height - 4);
    // The newest sample is at the right edge; a sample's place is its age in seconds.
    const newest = samples.length > 0 ? Date.parse(samples[samples.length - 1].at) : 0;
    for (const series of SERIES) {
      context.strokeStyle = series.color;
      context.lineWidth = 1.5;
      context.beginPath();
      let started = false;
      for (const sample of samples) {
        const age = (newest - Date.parse(sample.at)) / 1000;
        if (!(age >= 0 && age <= CHART_SECONDS)) {
          continue;
        }
        const x = left + plotWidth - (plotWidth * age) / CHART_SECONDS;
        const y = top + plotHeight - (plotHeight * sample[series.name]) / highest;
        if (started) {
          context.lineTo(x, y);
        } else {
          context.moveTo(x, y);
          started = true;
        }
      }
      context.stroke();
    }
  }

  function show(status) {
    setText("instance", status.instance);
    const uptime = Math.round(status.uptime_seconds);
    byId("overview").textContent =
      "Started " + status.started_at + ", up " + uptime + " s. Refreshed " +
      new Date().toLocaleTimeString() + ".";
    setText("ready", status.ready ? "ready" : "not ready", !status.ready);
    setText("postgres", status.postgres.ok ? "ok" : "unreachable", !status.postgres.ok);
    setText("kafka", status.kafka.ok ? "ok" : "unreachable", !status.kafka.ok);
    setText("restore", status.restore.restored ? "restored" : "restoring…", !status.restore.restored);
    setText("memory", number(status.memory.orders));
    setText("stored-total", number(status.ingest.stored_total));
    setText("rejected-total", number(status.ingest.rejected_total));
    setText("duplicates-total", number(status.ingest.duplicates_total));
    setText("http-rate", number(status.http.requests_per_second, 1));
    setText(
      "http-latency",
      status.http.p50_ms === null
        ? "no requests"
        : number(status.http.p50_ms, 2) + " / " + number(status.http.p99_ms, 2) + " ms"
    );
    const errors = [];
    if (status.postgres.error) {
      errors.push("PostgreSQL: " + status.postgres.error);
    }
    if (status.kafka.error) {
      errors.push("Kafka: " + status.kafka.error);
    }
    const errorBox = byId("health-errors");
    errorBox.textContent = errors.join(" · ");
    errorBox.hidden = errors.length === 0;

    const samples = status.ingest.per_second;
    const last = samples.length > 0 ? samples[samples.length - 1] : null;
    byId("rates").textContent = last === null
      ? "–"
      : number(last.consumed) + " consumed, " + number(last.stored) + " stored, " +
        number(last.rejected) + " rejected per second";
    drawChart(samples);

    replace(
      "partitions",
      table(
        ["Partition", "Owner", "Stored offset", "High watermark", "Lag", "Halted", "Since progress"],
        status.partitions.map((partition) => [
          partition.partition,
          partition.owner,
          partition.stored_offset,
          partition.high_watermark,
          partition.lag,
          partition.halted ? "halted at " + partition.halted_at : "no",
          partition.seconds_since_progress === null
            ? null
            : number(partition.seconds_since_progress, 1) + " s",
        ])
      )
    );
    replace(
      "fleet",
      table(
        ["Instance", "Partitions"],
        status.fleet.map((member) => [member.instance, member.partitions.join(", ")])
      )
    );

    const rejects = status.rejects;
    byId("dead-letters").textContent = rejects.dead_letter_topic === null
      ? "No dead-letter topic is set: rejects stay in PostgreSQL (see /rejects)."
      : String(rejects.pending) + " not yet in the dead-letter topic " + rejects.dead_letter_topic + ".";
    replace(
      "rejects-by-reason",
      table(
        ["Reason", "Count"],
        Object.keys(rejects.by_reason).map((reason) => [reason, rejects.by_reason[reason]])
      )
    );
    replace(
      "rejects-latest",
      table(
        ["Id", "Reason", "Partition", "Offset", "Rejected"],
        rejects.latest.map((reject) => {
          const link = element("a", null, reject.id);
          link.href = "/rejects/" + encodeURIComponent(String(reject.id));
          return [link, reject.reason, reject.partition, reject.offset, reject.rejected_at];
        })
      )
    );
  }

  async function refresh() {
    const headers = { Accept: "application/json" };
    const token = currentToken();
    if (token !== null) {
      headers.Authorization = "Bearer " + token;
    }
    try {
      const response = await fetch("/status.json", { headers: headers, cache: "no-store" });
      if (response.status === 401) {
        askForToken(token !== null);
        return;
      }
      if (!response.ok) {
        byId("overview").textContent = "/status.json answered " + response.status + "; retrying.";
      } else {
        show(await response.json());
      }
    } catch (networkError) {
      byId("overview").textContent = "orderstore does not answer; retrying.";
    }
    window.setTimeout(refresh, REFRESH_EVERY_MS);
  }

  refresh();
})();
