// The page's script: looks an order up by id or order_uid and shows it.
//
// Every order field is untrusted input from Kafka producers, so the page is built only with
// document.createElement and textContent: a field that holds HTML or script shows up as the
// literal text it is and never becomes markup. Nothing here uses innerHTML, outerHTML,
// insertAdjacentHTML or document.write. The server's content security policy allows only this
// file as script, as a second line of defence.
//
// When the server asks for a bearer token (401), the page asks for it once and keeps it in
// sessionStorage: for this tab only, gone when the tab closes, never in a cookie or the URL.
"use strict";

(function () {
  /** An order_uid as the contract defines it: it is also what the server accepts in a URL. */
  const ORDER_UID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
  /** An id is typed as digits; the server judges the rest (zero, leading zeros, size). */
  const ORDER_ID_PATTERN = /^[0-9]+$/;

  const searchForm = document.getElementById("search-form");
  const searchInput = document.getElementById("search-input");
  const statusArea = document.getElementById("status");
  const resultArea = document.getElementById("result");

  /** Aborts the lookup in flight when a new one starts, so an old answer never wins. */
  let lookupInFlight = null;

  /** Where the bearer token is kept, for this tab only. */
  const TOKEN_KEY = "orderstore.token";

  function storedToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (storageError) {
      return null;
    }
  }

  function storeToken(token) {
    try {
      if (token === null) {
        window.sessionStorage.removeItem(TOKEN_KEY);
      } else {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      }
    } catch (storageError) {
      // Storage refused (a private window's quota): the token lasts until the page reloads.
    }
    memoryToken = token;
  }

  /** The token when sessionStorage cannot keep one. */
  let memoryToken = null;

  function currentToken() {
    return storedToken() || memoryToken;
  }

  /**
   * Creates an element with a class and text. Text goes through textContent only, which is
   * what keeps hostile field values inert.
   */
  function element(tagName, className, text) {
    const created = document.createElement(tagName);
    if (className) {
      created.className = className;
    }
    if (text !== undefined && text !== null) {
      created.textContent = String(text);
    }
    return created;
  }

  /** Appends children (elements or plain strings, which become text nodes) to a parent. */
  function append(parent, children) {
    for (const child of children) {
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return parent;
  }

  function removeChildren(parent) {
    while (parent.firstChild) {
      parent.removeChild(parent.firstChild);
    }
  }

  /** Shows the value as given, or a dash when the contract allows it to be empty. */
  function textOrDash(value) {
    const text = value === undefined || value === null ? "" : String(value);
    return text.trim() === "" ? "\u2014" : text;
  }

  /** Money is an integer in the order; it is shown as it is, with the currency code. */
  function money(amount, currency) {
    return String(amount) + " " + String(currency);
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "short",
  });

  /** A date readably in the reader's time zone, or null when it does not parse. */
  function readableDate(date) {
    return Number.isNaN(date.getTime()) ? null : dateFormat.format(date);
  }

  /**
   * A date cell: the readable date, with the raw value underneath so an operator can still
   * compare it with logs and the JSON.
   */
  function dateValue(date, rawText) {
    const readable = readableDate(date);
    const wrapper = element("span", "date");
    if (readable === null) {
      wrapper.textContent = rawText;
      return wrapper;
    }
    const time = element("time", null, readable);
    time.dateTime = date.toISOString();
    return append(wrapper, [time, element("span", "raw", rawText)]);
  }

  /** A definition list of [label, value] pairs; a value is a string or an element. */
  function fieldList(fields, className) {
    const list = element("dl", className ? "fields " + className : "fields");
    for (const [label, value] of fields) {
      const row = element("div", "field");
      const term = element("dt", null, label);
      const description = element("dd");
      if (value instanceof Node) {
        description.appendChild(value);
      } else {
        description.textContent = textOrDash(value);
      }
      list.appendChild(append(row, [term, description]));
    }
    return list;
  }

  function section(title, className, children) {
    const block = element("section", "card " + className);
    block.appendChild(element("h2", "section-title", title));
    return append(block, children);
  }

  function header(order, orderId, rawText) {
    const block = element("section", "card order-header");
    const titleRow = element("div", "order-title-row");
    const title = element("h1", "order-uid", order.order_uid);
    const badges = element("div", "badges");
    badges.appendChild(element("span", "badge badge-id", "id " + textOrDash(orderId)));
    const rawLink = element("a", "raw-link", "JSON");
    if (currentToken() === null) {
      rawLink.href = orderUrl(order.order_uid);
    } else {
      // A plain link would not carry the token: show the JSON this page already has.
      rawLink.href = URL.createObjectURL(new Blob([rawText], { type: "application/json" }));
      rawLink.target = "_blank";
    }
    rawLink.title = "The order as the API serves it";
    badges.appendChild(rawLink);
    append(titleRow, [title, badges]);
    block.appendChild(titleRow);
    block.appendChild(
      fieldList(
        [
          ["Track number", order.track_number],
          ["Created", dateValue(new Date(order.date_created), String(order.date_created))],
          ["Customer", order.customer_id],
          ["Locale", order.locale],
          ["Delivery service", order.delivery_service],
          ["Entry", order.entry],
          ["Shard key", order.shardkey],
          ["OOF shard", order.oof_shard],
          ["SM id", order.sm_id],
          ["Internal signature", order.internal_signature],
        ],
        "fields-wide"
      )
    );
    return block;
  }

  function deliverySection(delivery) {
    return section("Delivery", "delivery", [
      fieldList([
        ["Name", delivery.name],
        ["Phone", delivery.phone],
        ["Email", delivery.email],
        ["Address", delivery.address],
        ["City", delivery.city],
        ["Zip", delivery.zip],
        ["Region", delivery.region],
      ]),
    ]);
  }

  function paymentSection(payment) {
    const currency = payment.currency;
    const amount = element("strong", "amount", money(payment.amount, currency));
    const paidAt = new Date(Number(payment.payment_dt) * 1000);
    return section("Payment", "payment", [
      fieldList([
        ["Amount", amount],
        ["Goods total", money(payment.goods_total, currency)],
        ["Delivery cost", money(payment.delivery_cost, currency)],
        ["Custom fee", money(payment.custom_fee, currency)],
        ["Paid at", dateValue(paidAt, "unix " + String(payment.payment_dt))],
        ["Transaction", payment.transaction],
        ["Request id", payment.request_id],
        ["Provider", payment.provider],
        ["Bank", payment.bank],
        ["Currency", currency],
      ]),
    ]);
  }

  /**
   * Item columns: heading, a class for the column's width, the value, and whether the column
   * holds numbers (right-aligned).
   */
  function itemColumns(currency) {
    return [
      ["Name", "column-name", (item) => item.name, false],
      ["Brand", "column-brand", (item) => item.brand, false],
      ["Price", "column-price", (item) => money(item.price, currency), true],
      ["Sale", "column-sale", (item) => String(item.sale) + " %", true],
      ["Total price", "column-total", (item) => money(item.total_price, currency), true],
      ["Size", "column-size", (item) => item.size, false],
      ["chrt_id", "column-chrt-id", (item) => item.chrt_id, true],
      ["nm_id", "column-nm-id", (item) => item.nm_id, true],
      ["rid", "column-rid", (item) => item.rid, false],
      ["Status", "column-status", (item) => item.status, true],
    ];
  }

  function itemsSection(items, currency) {
    const columns = itemColumns(currency);
    const table = element("table", "items-table");
    const head = element("thead");
    const headRow = element("tr");
    for (const [heading, columnClass, , numeric] of columns) {
      const cell = element("th", columnClass + (numeric ? " numeric" : ""), heading);
      cell.scope = "col";
      headRow.appendChild(cell);
    }
    append(table, [append(head, [headRow])]);
    const body = element("tbody");
    for (const item of items) {
      const row = element("tr");
      for (const [heading, columnClass, value, numeric] of columns) {
        const cell = element(
          "td",
          columnClass + (numeric ? " numeric" : ""),
          textOrDash(value(item))
        );
        // The narrow layout shows each cell as "heading: value"; the heading comes from
        // this attribute through CSS, as text.
        cell.setAttribute("data-label", heading);
        row.appendChild(cell);
      }
      body.appendChild(row);
    }
    table.appendChild(body);
    const scroller = element("div", "table-scroller");
    scroller.appendChild(table);
    const count = items.length === 1 ? "1 item" : String(items.length) + " items";
    return section("Items (" + count + ")", "items", [scroller]);
  }

  function renderOrder(order, orderId, rawText) {
    const view = element("article", "order");
    append(view, [
      header(order, orderId, rawText),
      append(element("div", "two-columns"), [
        deliverySection(order.delivery || {}),
        paymentSection(order.payment || {}),
      ]),
      itemsSection(Array.isArray(order.items) ? order.items : [], (order.payment || {}).currency),
    ]);
    removeChildren(resultArea);
    resultArea.appendChild(view);
    document.title = "Order " + String(order.order_uid) + " \u00b7 orderstore";
  }

  /** Shows a message in place of a result; kind is "info", "error" or "warning". */
  function showMessage(kind, title, detail, retry) {
    removeChildren(resultArea);
    const box = element("div", "message message-" + kind);
    box.appendChild(element("p", "message-title", title));
    if (detail) {
      box.appendChild(element("p", "message-detail", detail));
    }
    if (retry) {
      const button = element("button", "retry-button", "Try again");
      button.type = "button";
      button.addEventListener("click", retry);
      box.appendChild(button);
    }
    resultArea.appendChild(box);
    document.title = "orderstore";
  }

  /**
   * Asks for the API's bearer token, then runs `retry`. `refused` says a token was sent and
   * not accepted.
   */
  function askForToken(refused, retry) {
    removeChildren(resultArea);
    const box = element("form", "message message-warning token-form");
    box.appendChild(
      element("p", "message-title", refused ? "That token is not accepted." : "This orderstore needs a token.")
    );
    box.appendChild(
      element(
        "p",
        "message-detail",
        "Paste a bearer token from HTTP_AUTH_TOKENS. It is kept for this tab only."
      )
    );
    const label = element("label", "visually-hidden", "Bearer token");
    label.htmlFor = "token-input";
    const input = element("input", "search-input token-input");
    input.id = "token-input";
    input.type = "password";
    input.autocomplete = "off";
    input.required = true;
    const button = element("button", "search-button", "Use token");
    button.type = "submit";
    append(box, [label, input, button]);
    box.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (token !== "") {
        storeToken(token);
        retry();
      }
    });
    resultArea.appendChild(box);
    input.focus();
    document.title = "orderstore";
  }

  function setStatus(text) {
    statusArea.textContent = text;
  }

  function orderUrl(uid) {
    return "/orders/uid/" + encodeURIComponent(uid);
  }

  /** What the query asks for: a lookup by id or by uid, or null when it cannot be either. */
  function parseQuery(query) {
    if (ORDER_ID_PATTERN.test(query)) {
      return { kind: "id", label: "id " + query, url: "/orders/" + query };
    }
    if (ORDER_UID_PATTERN.test(query)) {
      return { kind: "uid", label: "order_uid " + query, url: orderUrl(query) };
    }
    return null;
  }

  /** Puts the query in the address bar, so the result can be shared or reloaded. */
  function rememberQuery(query) {
    const address = new URL(window.location.href);
    if (query === "") {
      address.searchParams.delete("q");
    } else {
      address.searchParams.set("q", query);
    }
    window.history.replaceState(null, "", address.pathname + address.search + address.hash);
  }

  /** The server's `error` text from a JSON error body, or null. */
  async function serverError(response) {
    try {
      const body = await response.json();
      return body && typeof body.error === "string" ? body.error : null;
    } catch (parseError) {
      return null;
    }
  }

  /**
   * Looks `query` up and shows the order or a message saying why there is none. A newer
   * lookup aborts this one, so answers never arrive out of order.
   */
  async function lookUp(query) {
    rememberQuery(query);
    if (lookupInFlight) {
      lookupInFlight.abort();
      lookupInFlight = null;
      resultArea.classList.remove("loading");
    }
    if (query === "") {
      setStatus("");
      showMessage("info", "Type an order id or an order_uid.", null, null);
      return;
    }
    const request = parseQuery(query);
    if (request === null) {
      setStatus("");
      showMessage(
        "error",
        "That is neither an order id nor an order_uid.",
        "An id is a positive number such as 42; an order_uid is 1 to 64 ASCII letters, " +
          "digits, '-' or '_'.",
        null
      );
      return;
    }
    const controller = new AbortController();
    lookupInFlight = controller;
    setStatus("Looking up " + request.label + "\u2026");
    resultArea.classList.add("loading");
    const retry = () => lookUp(query);
    let response;
    try {
      const headers = { Accept: "application/json" };
      const token = currentToken();
      if (token !== null) {
        headers.Authorization = "Bearer " + token;
      }
      response = await fetch(request.url, {
        headers: headers,
        signal: controller.signal,
        cache: "no-store",
      });
    } catch (networkError) {
      if (controller.signal.aborted) {
        return;
      }
      finish(controller);
      showMessage(
        "warning",
        "Cannot reach orderstore.",
        "The network request failed. Check the connection and try again.",
        retry
      );
      return;
    }
    if (response.ok) {
      let order;
      let rawText;
      try {
        rawText = await response.text();
        order = JSON.parse(rawText);
      } catch (parseError) {
        if (controller.signal.aborted) {
          return;
        }
        finish(controller);
        showMessage("error", "The server sent an order this page cannot read.", null, retry);
        return;
      }
      if (controller.signal.aborted) {
        return;
      }
      finish(controller);
      renderOrder(order, response.headers.get("X-Order-Id"), rawText);
      return;
    }
    const errorText = await serverError(response);
    if (controller.signal.aborted) {
      return;
    }
    finish(controller);
    if (response.status === 401) {
      const refused = currentToken() !== null;
      storeToken(null);
      askForToken(refused, retry);
    } else if (response.status === 404) {
      showMessage(
        "info",
        "No order with " + request.label,
        "Check the " + request.kind + ", or search by the " +
          (request.kind === "id" ? "order_uid" : "id") + " instead.",
        null
      );
    } else if (response.status === 400) {
      showMessage("error", "The server cannot use that " + request.kind + ".", errorText, null);
    } else if (response.status === 503) {
      showMessage(
        "warning",
        "The order store is unavailable right now.",
        errorText || "Its database cannot be reached; try again in a moment.",
        retry
      );
    } else {
      showMessage(
        "error",
        "The server answered " + String(response.status) + ".",
        errorText,
        retry
      );
    }
  }

  /** A table of `rows` (arrays of cell values) under `headings`, every cell as text. */
  function textTable(headings, rows) {
    const table = element("table", "items-table");
    const headRow = element("tr");
    for (const heading of headings) {
      headRow.appendChild(element("th", null, heading));
    }
    table.appendChild(append(element("thead"), [headRow]));
    const body = element("tbody");
    for (const cells of rows) {
      const row = element("tr");
      for (const cell of cells) {
        row.appendChild(element("td", null, textOrDash(cell)));
      }
      body.appendChild(row);
    }
    table.appendChild(body);
    return append(element("div", "table-scroller"), [table]);
  }

  /** The `GET` of `url` as JSON, with the token when there is one; null when it fails. */
  async function getJson(url) {
    const headers = { Accept: "application/json" };
    const token = currentToken();
    if (token !== null) {
      headers.Authorization = "Bearer " + token;
    }
    try {
      const response = await fetch(url, { headers: headers, cache: "no-store" });
      return response.ok ? await response.json() : { status: response.status };
    } catch (networkError) {
      return null;
    }
  }

  /**
   * Under the introduction: the rejected records summed up per reason, and the latest ten,
   * from /rejects/summary and /rejects. Their fields come from producers, so, like an
   * order's, they go in as text only.
   */
  async function showRejects() {
    const [summary, latest, status] = await Promise.all([
      getJson("/rejects/summary"),
      getJson("/rejects?limit=10"),
      getJson("/status.json"),
    ]);
    // The dead-letter topic is named only when one is set (status.json says which).
    const deadLetterTopic =
      status !== null && status.rejects !== undefined ? status.rejects.dead_letter_topic : null;
    const intro = resultArea.querySelector(".intro");
    if (intro === null || summary === null || latest === null) {
      return;
    }
    const card = element("section", "card rejects");
    card.appendChild(element("h2", "section-title", "Rejected records"));
    if (summary.status === 401 || latest.status === 401) {
      card.appendChild(
        element("p", "muted", "Rejected records need the token: look up an order to give it.")
      );
      resultArea.appendChild(card);
      return;
    }
    if (!Array.isArray(summary.reasons) || !Array.isArray(latest.rejects)) {
      return;
    }
    card.appendChild(
      element(
        "p",
        "muted",
        typeof deadLetterTopic === "string"
          ? String(summary.total) + " recorded, " + String(summary.pending) +
              " not yet in the dead-letter topic " + deadLetterTopic + "."
          : String(summary.total) + " recorded (no dead-letter topic is set)."
      )
    );
    if (summary.reasons.length > 0) {
      card.appendChild(
        textTable(
          ["Reason", "Count", "First seen", "Last seen"],
          summary.reasons.map((kind) => [
            kind.reason,
            kind.count,
            readableDate(new Date(kind.first_seen)) || kind.first_seen,
            readableDate(new Date(kind.last_seen)) || kind.last_seen,
          ])
        )
      );
    }
    if (latest.rejects.length > 0) {
      card.appendChild(element("h3", "section-title", "Latest"));
      card.appendChild(
        textTable(
          ["Id", "Partition", "Offset", "Reason", "Field", "Rule", "Rejected"],
          latest.rejects.map((reject) => [
            reject.id,
            reject.partition,
            reject.offset,
            reject.reason,
            reject.path,
            reject.rule,
            readableDate(new Date(reject.rejected_at)) || reject.rejected_at,
          ])
        )
      );
    }
    resultArea.appendChild(card);
  }

  /**
   * Under the introduction: the latest orders stored (/orders/latest), each a link to its
   * lookup, so that someone who knows no order_uid has something to open.
   */
  async function showLatestOrders() {
    const latest = await getJson("/orders/latest?limit=10");
    const intro = resultArea.querySelector(".intro");
    if (intro === null || latest === null || !Array.isArray(latest.orders)) {
      return;
    }
    const card = element("section", "card latest-orders");
    card.appendChild(element("h2", "section-title", "Latest orders stored"));
    if (latest.orders.length === 0) {
      card.appendChild(element("p", "muted", "No order is stored yet."));
    }
    // Divs and spans, not a list: the page's DOM test knows only the elements it creates.
    const list = element("div", "latest-list");
    for (const order of latest.orders) {
      const link = element("a", null, order.order_uid);
      link.href = "/?q=" + encodeURIComponent(order.order_uid);
      const item = element("div");
      item.appendChild(link);
      item.appendChild(element("span", "muted", " id " + String(order.id)));
      list.appendChild(item);
    }
    card.appendChild(list);
    intro.after(card);
  }

  /** Ends the loading state of the lookup that is still the current one. */
  function finish(controller) {
    if (lookupInFlight === controller) {
      lookupInFlight = null;
    }
    setStatus("");
    resultArea.classList.remove("loading");
  }

  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = searchInput.value.trim();
    searchInput.value = query;
    lookUp(query);
  });

  // A deep link, /?q=<id or order_uid>, fills the box and looks the order up at once.
  const linkedQuery = new URLSearchParams(window.location.search).get("q");
  if (linkedQuery !== null && linkedQuery.trim() !== "") {
    searchInput.value = linkedQuery.trim();
    lookUp(linkedQuery.trim());
  } else {
    showLatestOrders();
    showRejects();
  }
})();
