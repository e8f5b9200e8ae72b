/* DaisyBot playground chat page. Vanilla JS, no build step.
 *
 * Every piece of text from the server is put into the DOM with textContent /
 * createTextNode; formatting comes only from the message entities.
 */
(function () {
  "use strict";

  var state = {
    users: [],
    userId: null,
    bot: { first_name: "Bot", username: "" },
    seq: 0,
    ws: null,
    wsGeneration: 0,
    reconnectDelay: 500,
    messages: new Map(), // message_id -> message json
    presses: [], // inline-button presses waiting for the bot (see pressButton)
    answered: [], // query ids whose callback_answer arrived (maybe before the POST returned)
    stick: true, // keep the message list scrolled to the bottom
    unseen: 0, // messages that arrived while the user was scrolled up
    ownSends: 0, // messages sent from this page, not yet seen coming back
    panelEnabled: false,
    panelTimer: null,
    typingTimer: null,
    toastTimer: null,
    payments: new Map(), // invoice message_id -> {status, error}: the latest payment attempt
  };

  var el = {
    messages: document.getElementById("messages"),
    emptyHint: document.getElementById("empty-hint"),
    composerForm: document.getElementById("composer-form"),
    composer: document.getElementById("composer"),
    send: document.getElementById("send"),
    userPicker: document.getElementById("user-picker"),
    botName: document.getElementById("bot-name"),
    botStatus: document.getElementById("bot-status"),
    botAvatar: document.getElementById("bot-avatar"),
    banner: document.getElementById("banner"),
    bannerLines: document.getElementById("banner-lines"),
    bannerClose: document.getElementById("banner-close"),
    bannerShow: document.getElementById("banner-show"),
    newPill: document.getElementById("new-pill"),
    commands: document.getElementById("commands"),
    replyKeyboard: document.getElementById("reply-keyboard"),
    panel: document.getElementById("panel"),
    panelToggle: document.getElementById("panel-toggle"),
    panelClose: document.getElementById("panel-close"),
    panelBackdrop: document.getElementById("panel-backdrop"),
    panelWallet: document.getElementById("panel-wallet"),
    panelNumbers: document.getElementById("panel-numbers"),
    panelInfo: document.getElementById("panel-info"),
    panelInfoSection: document.getElementById("panel-info-section"),
    panelError: document.getElementById("panel-error"),
    toast: document.getElementById("toast"),
    alert: document.getElementById("alert"),
    alertText: document.getElementById("alert-text"),
    alertOk: document.getElementById("alert-ok"),
  };

  // ------------------------------------------------------------------ helpers
  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "className") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key.indexOf("data-") === 0 || key.indexOf("aria-") === 0) node.setAttribute(key, String(value));
        else node.setAttribute(key, String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  var API_TIMEOUT_MS = 20000;

  function api(method, path, body) {
    var opts = { method: method, headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    // a request never hangs forever (it would leave a button busy)
    var timer = null;
    if (typeof AbortController === "function") {
      var controller = new AbortController();
      opts.signal = controller.signal;
      timer = setTimeout(function () { controller.abort(); }, API_TIMEOUT_MS);
    }
    return fetch(path, opts).then(function (res) {
      clearTimeout(timer);
      return res.json().catch(function () { return { ok: false, error: "HTTP " + res.status }; })
        .then(function (data) {
          if (!res.ok || data.ok === false) {
            var err = new Error((data && data.error) || ("HTTP " + res.status));
            err.status = res.status;
            throw err;
          }
          return data;
        });
    }, function (err) {
      clearTimeout(timer);
      if (err && err.name === "AbortError") throw new Error("no answer from the playground");
      throw err;
    });
  }

  function safeHref(url) {
    if (typeof url !== "string") return null;
    var trimmed = url.trim();
    if (/^(https?:|tg:|mailto:)/i.test(trimmed)) return trimmed;
    if (/^[a-z][a-z0-9+.\-]*:/i.test(trimmed)) return null; // javascript:, data:, ...
    if (/^www\.|^[a-z0-9\-]+(\.[a-z0-9\-]+)+([\/?#:]|$)/i.test(trimmed)) return "http://" + trimmed;
    return null;
  }

  function formatTime(unixSeconds) {
    var d = new Date(unixSeconds * 1000);
    var hh = String(d.getHours()).padStart(2, "0");
    var mm = String(d.getMinutes()).padStart(2, "0");
    return hh + ":" + mm;
  }

  function showToast(text, ms) {
    el.toast.textContent = text;
    el.toast.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(function () { el.toast.hidden = true; }, ms || 2600);
  }

  function showAlert(text) {
    el.alertText.textContent = text;
    el.alert.hidden = false;
    el.alertOk.focus();
  }

  el.alertOk.addEventListener("click", function () { el.alert.hidden = true; el.composer.focus(); });
  el.alert.addEventListener("click", function (ev) { if (ev.target === el.alert) el.alert.hidden = true; });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    if (!el.alert.hidden) el.alert.hidden = true;
    else if (el.panel.classList.contains("open")) setPanelOpen(false);
  });

  function copyToClipboard(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return legacyCopy(text); });
    }
    return Promise.resolve(legacyCopy(text));
  }

  function legacyCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.top = "-1000px";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    if (!ok) throw new Error("copy failed");
    return true;
  }

  function copyWithToast(text) {
    return Promise.resolve()
      .then(function () { return copyToClipboard(text); })
      .then(function () { showToast("Copied"); return true; })
      .catch(function () { showToast("Copy failed — select the text manually"); return false; });
  }

  // ------------------------------------------------------------------ date_time entities
  // Telegram shows a date_time entity (HTML <tg-time>) in the reader's own time zone and
  // language; the bot's fallback text stays as the tooltip. Formats (Bot API "date-time
  // entity formatting"): "r" relative ("in 3 minutes", kept live), else any of w (day of
  // the week), d (short date: year only when not this year) or D (long date), t (short
  // time) or T (long time), in the order the reader's locale puts them (one
  // Intl.DateTimeFormat); "" shows the text as is (the date is in the tooltip).
  var TIME_REFRESH_MS = 5000;

  function readerLocale() {
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    return langs.filter(Boolean);
  }

  function absoluteOptions(format, date, now) {
    var o = {};
    if (format.indexOf("w") >= 0) o.weekday = "long";
    if (format.indexOf("D") >= 0) { o.day = "numeric"; o.month = "long"; o.year = "numeric"; }
    else if (format.indexOf("d") >= 0) {
      o.day = "numeric"; o.month = "numeric"; // "17.03.22"-like, the year only if not this one
      if (date.getFullYear() !== now.getFullYear()) o.year = "numeric";
    }
    if (format.indexOf("T") >= 0) { o.hour = "numeric"; o.minute = "2-digit"; o.second = "2-digit"; }
    else if (format.indexOf("t") >= 0) { o.hour = "numeric"; o.minute = "2-digit"; }
    return o;
  }

  var RELATIVE_UNITS = [
    ["year", 365 * 86400], ["month", 30 * 86400], ["week", 7 * 86400],
    ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1],
  ];

  function relativeText(unixSeconds, nowMs, locales) {
    var diff = unixSeconds - Math.round(nowMs / 1000); // > 0: in the future
    var abs = Math.abs(diff);
    var fmt = new Intl.RelativeTimeFormat(locales, { numeric: "auto" });
    for (var k = 0; k < RELATIVE_UNITS.length; k++) {
      var unit = RELATIVE_UNITS[k][0];
      var size = RELATIVE_UNITS[k][1];
      if (abs >= size || unit === "second") {
        var n = Math.round(diff / size);
        if (unit === "second" && abs < 10) return fmt.format(0, "second"); // "now"
        return fmt.format(n, unit);
      }
    }
    return "";
  }

  function formatDateTime(unixSeconds, format, nowMs, locales) {
    if (format === "r") return relativeText(unixSeconds, nowMs, locales);
    var date = new Date(unixSeconds * 1000);
    return new Intl.DateTimeFormat(locales, absoluteOptions(format, date, new Date(nowMs))).format(date);
  }

  function renderTimeNode(node, nowMs) {
    var unix = Number(node.getAttribute("data-unix"));
    var format = node.getAttribute("data-format") || "";
    if (!format) return; // the text as the bot wrote it
    var text;
    try { text = formatDateTime(unix, format, nowMs, readerLocale()); } catch (e) { text = ""; }
    if (text && node.textContent !== text) node.textContent = text;
  }

  function timeElement(entity, covered) {
    var format = entity.date_time_format || "";
    var date = new Date(Number(entity.unix_time) * 1000);
    var local = "";
    try {
      local = new Intl.DateTimeFormat(readerLocale(), { dateStyle: "full", timeStyle: "long" }).format(date);
    } catch (e) { local = date.toString(); }
    return h("time", {
      className: "tg-time",
      datetime: date.toISOString(),
      title: format ? covered : covered + " — " + local,
      "data-unix": String(entity.unix_time),
      "data-format": format,
      "data-testid": "tg-time",
    });
  }

  // Relative times stay live, like in Telegram ("in 3 minutes" ... "2 minutes ago").
  setInterval(function () {
    var now = Date.now();
    Array.prototype.slice.call(document.querySelectorAll('time.tg-time[data-format="r"]'))
      .forEach(function (node) { renderTimeNode(node, now); });
  }, TIME_REFRESH_MS);

  // ------------------------------------------------------------------ entities -> DOM
  // Offsets are UTF-16 code units, which is exactly how JS strings are indexed.
  var ORDER = [
    "blockquote", "expandable_blockquote", "pre", "code", "text_link", "url", "email",
    "mention", "text_mention", "bot_command", "hashtag", "cashtag", "phone_number",
    "bold", "italic", "underline", "strikethrough", "spoiler", "custom_emoji",
    "date_time", // innermost: its rendered text replaces the fallback, formatting stays around it
  ];

  function sortEntities(entities) {
    return (entities || []).slice().sort(function (a, b) {
      if (a.offset !== b.offset) return a.offset - b.offset;
      if (a.length !== b.length) return b.length - a.length;
      return ORDER.indexOf(a.type) - ORDER.indexOf(b.type);
    });
  }

  function entityElement(entity, text) {
    var covered = text.substr(entity.offset, entity.length);
    var node;
    switch (entity.type) {
      case "bold": return h("b");
      case "italic": return h("i");
      case "underline": return h("u");
      case "strikethrough": return h("s");
      case "spoiler":
        node = h("span", { className: "spoiler", title: "Spoiler: click to reveal" });
        node.addEventListener("click", function () { node.classList.toggle("revealed"); });
        return node;
      case "code":
        node = h("code", { title: "Click to copy" });
        node.addEventListener("click", function () { copyWithToast(node.textContent); });
        return node;
      case "pre":
        node = h("pre", { title: "Click to copy", "data-language": entity.language || null });
        node.addEventListener("click", function () { copyWithToast(node.textContent); });
        return node;
      case "blockquote":
      case "expandable_blockquote":
        return h("blockquote");
      case "text_link":
      case "url": {
        var href = safeHref(entity.type === "url" ? covered : entity.url);
        if (!href) return h("span", { className: "link-invalid" });
        return h("a", { href: href, target: "_blank", rel: "noopener noreferrer" });
      }
      case "email":
        return h("a", { href: "mailto:" + covered });
      case "bot_command":
        node = h("span", { className: "cmd", role: "button", tabindex: "0", title: "Send " + covered });
        node.addEventListener("click", function (ev) { ev.stopPropagation(); sendText(covered.split("@")[0]); });
        return node;
      case "mention": return h("span", { className: "mention" });
      case "hashtag": return h("span", { className: "hashtag" });
      case "cashtag": return h("span", { className: "cashtag" });
      case "date_time": return timeElement(entity, covered);
      default: return h("span", { className: "entity-" + String(entity.type).replace(/[^a-z_]/g, "") });
    }
  }

  var BLOCK_TYPES = { pre: true, blockquote: true, expandable_blockquote: true };

  function renderRange(text, start, end, entities, parent) {
    var pos = start;
    var i = 0;
    while (i < entities.length) {
      var e = entities[i];
      var s = Math.max(e.offset, start);
      var t = Math.min(e.offset + e.length, end);
      if (s < pos || t <= s) { i++; continue; }
      var block = BLOCK_TYPES[e.type] === true;
      if (s > pos) {
        var before = text.slice(pos, s);
        // a block element starts on its own line already: drop one separating newline
        if (block && before.charAt(before.length - 1) === "\n") before = before.slice(0, -1);
        if (before) parent.appendChild(document.createTextNode(before));
      }
      var inner = [];
      var j = i + 1;
      while (j < entities.length && entities[j].offset < t) { inner.push(entities[j]); j++; }
      var node = entityElement(e, text);
      var innerEnd = t;
      if (block && text.charAt(innerEnd - 1) === "\n" && innerEnd - 1 > s) innerEnd -= 1;
      renderRange(text, s, innerEnd, inner, node);
      if (e.type === "date_time") renderTimeNode(node, Date.now());
      parent.appendChild(node);
      pos = t;
      if (block && pos < end && text.charAt(pos) === "\n") pos += 1;
      i = j;
    }
    if (pos < end) parent.appendChild(document.createTextNode(text.slice(pos, end)));
  }

  function renderText(text, entities) {
    var container = h("div", { className: "text", "data-testid": "message-text" });
    renderRange(text || "", 0, (text || "").length, sortEntities(entities), container);
    return container;
  }

  // ------------------------------------------------------------------ messages
  function renderKeyboard(message) {
    if (!message.buttons || !message.buttons.length) return null;
    var kb = h("div", { className: "keyboard", "data-testid": "keyboard" });
    message.buttons.forEach(function (row) {
      var rowEl = h("div", { className: "kb-row" });
      row.forEach(function (button) {
        rowEl.appendChild(renderButton(message, button));
      });
      kb.appendChild(rowEl);
    });
    return kb;
  }

  function renderButton(message, button) {
    var common = {
      className: "kb-btn",
      "data-testid": "kb-button",
      "data-kind": button.kind,
      title: button.text,
      text: button.text,
    };
    if (button.kind === "url") {
      var href = safeHref(button.url);
      common.href = href || null;
      common.target = "_blank";
      common.rel = "noopener noreferrer";
      common["data-url"] = button.url;
      return h("a", common);
    }
    var node = h("button", Object.assign(common, { type: "button" }));
    if (button.kind === "pay") {
      decoratePayButton(message, node);
    } else if (button.kind === "callback") {
      node.setAttribute("data-callback-data", button.callback_data);
      node.addEventListener("click", function () { pressButton(message.message_id, button.callback_data, node); });
    } else if (button.kind === "copy_text") {
      node.setAttribute("data-copy-text", button.copy_text);
      node.addEventListener("click", function () {
        copyWithToast(button.copy_text).then(function (ok) {
          if (!ok) return;
          node.classList.add("copied");
          node.textContent = "Copied";
          setTimeout(function () { node.classList.remove("copied"); node.textContent = button.text; }, 1400);
        });
      });
    } else {
      node.addEventListener("click", function () { showToast("This button type is not supported here"); });
    }
    return node;
  }

  // ------------------------------------------------------------------ payments
  // An invoice is a card (title, description, "⭐ N") with a Pay button that stands in
  // for Telegram's payment sheet: POST /api/pay, then "payment" events tell the outcome.
  function priceText(invoice) {
    if (invoice.currency === "XTR") return "⭐ " + invoice.total_amount;
    return invoice.total_amount + " " + invoice.currency;
  }

  var PAYMENT_TEXT = {
    pending: "Waiting for the bot to confirm…",
    paid: "✅ Paid",
    declined: "❌ Payment declined",
    expired: "❌ Payment failed: the bot did not confirm in time",
  };

  function paymentStatus(message) {
    if (message.invoice_paid) return { status: "paid", error: null };
    return state.payments.get(message.message_id) || null;
  }

  function decoratePayButton(message, node) {
    var payment = paymentStatus(message);
    node.setAttribute("data-testid", "pay-button");
    node.setAttribute("data-kind", "pay");
    if (payment && payment.status === "paid") {
      node.textContent = "Receipt";
      node.disabled = true;
    } else if (payment && payment.status === "pending") {
      node.classList.add("pending");
      node.setAttribute("aria-busy", "true");
    }
    node.addEventListener("click", function () { payInvoice(message.message_id, node); });
  }

  function renderInvoice(message) {
    var inv = message.invoice;
    var payment = paymentStatus(message);
    var card = h("div", { className: "invoice", "data-testid": "invoice" }, [
      h("div", { className: "invoice-title", "data-testid": "invoice-title", text: inv.title }),
      h("div", { className: "invoice-description", text: inv.description }),
      h("div", { className: "invoice-price", "data-testid": "invoice-price", text: priceText(inv) }),
    ]);
    if (payment) {
      var text = PAYMENT_TEXT[payment.status] || payment.status;
      if (payment.status === "declined" && payment.error) text += ": " + payment.error;
      card.appendChild(h("div", {
        className: "invoice-status " + payment.status,
        "data-testid": "invoice-status",
        "data-status": payment.status,
        text: text,
      }));
    }
    return card;
  }

  function payInvoice(messageId, node) {
    var current = state.messages.get(messageId);
    if (node.classList.contains("pending") || !current || current.invoice_paid) return;
    state.payments.set(messageId, { status: "pending", error: null });
    upsertMessage(current, false);
    api("POST", "/api/pay", { user_id: state.userId, message_id: messageId }).catch(function (err) {
      state.payments.delete(messageId);
      var m = state.messages.get(messageId);
      if (m) upsertMessage(m, false);
      showToast("Payment failed: " + err.message);
    });
  }

  function notePayment(ev) {
    if (ev.message_id === null || ev.message_id === undefined) return;
    var status = ev.kind === "pre_checkout_query" ? "pending" : ev.status;
    state.payments.set(ev.message_id, { status: status, error: ev.error_message || null });
    var m = state.messages.get(ev.message_id);
    if (m) {
      if (status === "paid") m = Object.assign({}, m, { invoice_paid: true });
      upsertMessage(m, status !== "pending");
    }
    if (status === "declined") showAlert(ev.error_message || "The bot declined the payment.");
    if (status === "expired") showAlert("Payment failed: the bot did not confirm it within 10 seconds.");
  }

  function serviceText(message) {
    if (message.successful_payment) {
      var sp = message.successful_payment;
      return "You paid " + priceText({ currency: sp.currency, total_amount: sp.total_amount });
    }
    var rp = message.refunded_payment;
    return priceText({ currency: rp.currency, total_amount: rp.total_amount }) + " refunded to you";
  }

  function renderMessage(message) {
    if (message.successful_payment || message.refunded_payment) {
      return h("div", {
        className: "msg service",
        "data-testid": "service-message",
        "data-message-id": message.message_id,
        "data-from": message.from_bot ? "bot" : "user",
      }, [h("div", { className: "service-text", text: serviceText(message) })]);
    }
    var wrapper = h("div", {
      className: "msg " + (message.from_bot ? "bot" : "user"),
      "data-testid": "message",
      "data-message-id": message.message_id,
      "data-from": message.from_bot ? "bot" : "user",
      "data-edited": message.edited ? "true" : "false",
    });
    var bubble = h("div", { className: "bubble" });
    var meta = h("span", { className: "meta" }, [
      message.edited ? h("span", { className: "edited", text: "edited" }) : null,
      h("time", { text: formatTime(message.edit_date || message.date) }),
    ]);
    if (message.invoice) bubble.appendChild(renderInvoice(message));
    else bubble.appendChild(renderText(message.text, message.entities));
    bubble.appendChild(meta);
    wrapper.appendChild(bubble);
    var kb = renderKeyboard(message);
    if (message.invoice && !hasPayButton(message)) {
      // no keyboard of the bot's own: Telegram shows a "Pay ⭐N" button
      var pay = { text: "Pay " + priceText(message.invoice), kind: "pay" };
      var row = h("div", { className: "kb-row" }, [renderButton(message, pay)]);
      if (!kb) kb = h("div", { className: "keyboard", "data-testid": "keyboard" });
      kb.insertBefore(row, kb.firstChild);
    }
    if (kb) wrapper.appendChild(kb);
    return wrapper;
  }

  function hasPayButton(message) {
    return (message.buttons || []).some(function (row) {
      return row.some(function (b) { return b.kind === "pay"; });
    });
  }

  // ------------------------------------------------------------------ scrolling
  // The list sticks to the bottom while the user is there; scrolled up, new
  // messages only raise the "new messages" pill.
  var STICK_PX = 48;

  function distanceFromBottom() {
    var m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight;
  }

  function scrollToBottom(smooth) {
    state.stick = true;
    hidePill();
    var m = el.messages;
    if (smooth && typeof m.scrollTo === "function") {
      // far away: jump close first, then glide the last stretch
      var near = m.scrollHeight - m.clientHeight * 2;
      if (m.scrollTop < near) m.scrollTop = near;
      m.scrollTo({ top: m.scrollHeight, behavior: "smooth" });
    } else {
      m.scrollTop = m.scrollHeight;
    }
  }

  function keepAtBottom() {
    if (state.stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function hidePill() {
    state.unseen = 0;
    el.newPill.hidden = true;
  }

  function noteUnseen() {
    state.unseen += 1;
    el.newPill.textContent = "↓ " + (state.unseen === 1 ? "new message" : state.unseen + " new messages");
    el.newPill.hidden = false;
  }

  el.messages.addEventListener("scroll", function () {
    state.stick = distanceFromBottom() <= STICK_PX;
    if (state.stick) hidePill();
  }, { passive: true });
  el.newPill.addEventListener("click", function () { scrollToBottom(true); });
  if (typeof ResizeObserver === "function") {
    // the list's box changes (reply keyboard, notes, window): stay at the bottom
    new ResizeObserver(keepAtBottom).observe(el.messages);
  }
  window.addEventListener("resize", keepAtBottom);

  function findMessageNode(messageId) {
    return el.messages.querySelector('.msg[data-message-id="' + String(Number(messageId)) + '"]');
  }

  function upsertMessage(message, flash) {
    if (message.deleted) { removeMessage(message.message_id); return; }
    state.messages.set(message.message_id, message);
    var node = renderMessage(message);
    var existing = findMessageNode(message.message_id);
    // its buttons are new nodes: a press on the old ones is over
    settlePresses(function (p) { return p.messageId === message.message_id; });
    if (existing) {
      el.messages.replaceChild(node, existing);
      if (flash) { node.classList.add("flash"); }
      keepAtBottom();
    } else {
      // keep the list ordered by message_id
      var after = null;
      var nodes = el.messages.querySelectorAll(".msg");
      for (var i = nodes.length - 1; i >= 0; i--) {
        if (Number(nodes[i].getAttribute("data-message-id")) < message.message_id) { after = nodes[i]; break; }
      }
      if (after) after.insertAdjacentElement("afterend", node);
      else if (nodes.length) el.messages.insertBefore(node, nodes[0]);
      else el.messages.appendChild(node);
      if (!message.from_bot && state.ownSends > 0) {
        state.ownSends -= 1;
        scrollToBottom(false); // just sent from this page: jump down to it
      } else if (state.stick) keepAtBottom();
      else noteUnseen();
    }
    el.emptyHint.hidden = state.messages.size > 0;
  }

  function removeMessage(messageId) {
    state.messages.delete(messageId);
    settlePresses(function (p) { return p.messageId === messageId; });
    var node = findMessageNode(messageId);
    if (node) node.parentNode.removeChild(node);
    el.emptyHint.hidden = state.messages.size > 0;
  }

  function clearMessages() {
    state.messages.clear();
    settlePresses(function () { return true; });
    Array.prototype.slice.call(el.messages.querySelectorAll(".msg")).forEach(function (n) {
      n.parentNode.removeChild(n);
    });
    el.emptyHint.hidden = false;
    hidePill();
  }

  // ------------------------------------------------------------------ commands + reply keyboard
  function renderCommands(commands) {
    el.commands.textContent = "";
    (commands || []).forEach(function (cmd) {
      var chip = h("button", {
        type: "button",
        className: "cmd-chip",
        "data-testid": "command",
        "data-command": cmd.command,
        title: cmd.description,
        text: "/" + cmd.command,
      });
      chip.addEventListener("click", function () { sendText("/" + cmd.command); });
      el.commands.appendChild(chip);
    });
  }

  function renderReplyKeyboard(keyboard) {
    el.replyKeyboard.textContent = "";
    if (!keyboard || !keyboard.keyboard || !keyboard.keyboard.length) {
      el.replyKeyboard.hidden = true;
      return;
    }
    keyboard.keyboard.forEach(function (row) {
      var rowEl = h("div", { className: "kb-row" });
      row.forEach(function (button) {
        var label = typeof button === "string" ? button : button.text;
        var b = h("button", { type: "button", className: "reply-btn", "data-testid": "reply-button", text: label });
        b.addEventListener("click", function () { sendText(label); });
        rowEl.appendChild(b);
      });
      el.replyKeyboard.appendChild(rowEl);
    });
    el.replyKeyboard.hidden = false;
  }

  // ------------------------------------------------------------------ actions
  function sendText(text) {
    if (!text || !text.trim() || state.userId === null) return Promise.resolve();
    el.send.disabled = true;
    state.ownSends += 1;
    return api("POST", "/api/send", { user_id: state.userId, text: text })
      .catch(function (err) {
        state.ownSends = Math.max(0, state.ownSends - 1);
        showToast("Could not send: " + err.message);
      })
      .then(function () { el.send.disabled = false; });
  }

  // An inline-button press shows a spinner until the bot reacts. The answer
  // (callback_answer over the websocket) may arrive before the POST returns, so
  // a press is found by its query id, or by message + data before the id is
  // known. The spinner ends at: the bot's answer, a new message or an edit of
  // that message, the POST failing, or a safety timeout. The button is never
  // disabled; a second click is only ignored while the spinner runs.
  var PRESS_TIMEOUT_MS = 10000;

  function settle(press) {
    if (press.done) return;
    press.done = true;
    clearTimeout(press.timer);
    press.node.classList.remove("pending");
    press.node.removeAttribute("aria-busy");
    var i = state.presses.indexOf(press);
    if (i >= 0) state.presses.splice(i, 1);
  }

  function settlePresses(match) {
    state.presses.slice().forEach(function (p) { if (match(p)) settle(p); });
  }

  function wasAnswered(queryId) {
    return state.answered.indexOf(queryId) >= 0;
  }

  function noteAnswered(queryId) {
    if (queryId === undefined || queryId === null) return;
    state.answered.push(queryId);
    if (state.answered.length > 100) state.answered.splice(0, state.answered.length - 100);
    settlePresses(function (p) { return p.queryId === queryId; });
  }

  function noteQuery(ev) {
    // our own press, echoed by the websocket: learn its query id early
    if (ev.query_id === undefined) return;
    for (var i = 0; i < state.presses.length; i++) {
      var p = state.presses[i];
      if (p.queryId === null && p.messageId === ev.message_id && p.data === ev.data) {
        p.queryId = ev.query_id;
        if (wasAnswered(p.queryId)) settle(p);
        return;
      }
    }
  }

  function pressButton(messageId, data, node) {
    if (node.classList.contains("pending")) return;
    var press = { messageId: messageId, data: data, node: node, queryId: null, done: false, timer: null };
    state.presses.push(press);
    node.classList.add("pending");
    node.setAttribute("aria-busy", "true");
    press.timer = setTimeout(function () { settle(press); }, PRESS_TIMEOUT_MS);
    api("POST", "/api/press", { user_id: state.userId, message_id: messageId, data: data })
      .then(function (res) {
        if (press.done) return;
        press.queryId = res.query_id;
        if (wasAnswered(press.queryId)) settle(press);
      })
      .catch(function (err) {
        settle(press);
        showToast("Button press failed: " + err.message);
      });
  }

  el.composerForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = el.composer.value;
    if (!text.trim()) return;
    el.composer.value = "";
    sendText(text);
    el.composer.focus();
  });

  // ------------------------------------------------------------------ events
  function setStatus(text, cls) {
    el.botStatus.textContent = text;
    el.botStatus.className = "bot-status" + (cls ? " " + cls : "");
  }

  function applyEvent(ev) {
    if (typeof ev.seq === "number" && ev.seq > state.seq) state.seq = ev.seq;
    switch (ev.kind) {
      case "message":
        upsertMessage(ev.message, false);
        if (ev.message && ev.message.from_bot) {
          clearTimeout(state.typingTimer);
          setStatus("bot", "");
          settlePresses(function () { return true; }); // the bot replied
        }
        schedulePanelRefresh();
        break;
      case "edited":
        upsertMessage(ev.message, true);
        schedulePanelRefresh();
        break;
      case "deleted":
        removeMessage(ev.message_id);
        break;
      case "callback_query":
        noteQuery(ev);
        break;
      case "callback_answer": {
        noteAnswered(ev.query_id);
        if (ev.text) { if (ev.show_alert) showAlert(ev.text); else showToast(ev.text); }
        schedulePanelRefresh();
        break;
      }
      case "chat_action":
        setStatus(ev.action === "typing" ? "typing…" : ev.action.replace(/_/g, " ") + "…", "typing");
        clearTimeout(state.typingTimer);
        state.typingTimer = setTimeout(function () { setStatus("bot", ""); }, 5000);
        break;
      case "reply_keyboard":
        renderReplyKeyboard(ev.keyboard);
        break;
      case "commands":
        renderCommands(ev.commands);
        break;
      case "pre_checkout_query":
      case "payment":
        notePayment(ev);
        schedulePanelRefresh();
        break;
      default:
        break;
    }
  }

  function loadTranscript() {
    var uid = state.userId;
    return api("GET", "/api/transcript?user_id=" + encodeURIComponent(uid)).then(function (data) {
      if (uid !== state.userId) return;
      clearMessages();
      state.seq = data.seq;
      data.messages.forEach(function (m) { upsertMessage(m, false); });
      renderCommands(data.commands);
      renderReplyKeyboard(data.reply_keyboard);
      scrollToBottom(false);
    });
  }

  function connect() {
    var generation = ++state.wsGeneration;
    if (state.ws) { try { state.ws.close(); } catch (e) { /* ignore */ } }
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var url = proto + location.host + "/api/ws?user_id=" + encodeURIComponent(state.userId) +
      "&since=" + encodeURIComponent(state.seq);
    var ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = function () {
      if (generation !== state.wsGeneration) return;
      state.reconnectDelay = 500;
      setStatus("bot", "");
    };
    ws.onmessage = function (msg) {
      if (generation !== state.wsGeneration) return;
      var ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      if (ev.kind === "hello" || ev.kind === "pong") return;
      applyEvent(ev);
    };
    ws.onclose = function () {
      if (generation !== state.wsGeneration) return;
      setStatus("reconnecting…", "offline");
      var delay = state.reconnectDelay;
      state.reconnectDelay = Math.min(state.reconnectDelay * 2, 5000);
      setTimeout(function () {
        if (generation !== state.wsGeneration) return;
        loadTranscript().then(connect, function () { ws.onclose(); });
      }, delay);
    };
  }

  function selectUser(userId) {
    state.userId = userId;
    settlePresses(function () { return true; });
    state.answered = [];
    state.ownSends = 0;
    try { localStorage.setItem("daisybot-playground-user", String(userId)); } catch (e) { /* ignore */ }
    el.userPicker.value = String(userId);
    setStatus("connecting…", "");
    return loadTranscript().then(connect, function (err) {
      setStatus("offline", "offline");
      showToast("Could not load the chat: " + err.message);
    });
  }

  el.userPicker.addEventListener("change", function () {
    selectUser(Number(el.userPicker.value));
  });

  // ------------------------------------------------------------------ side panel
  function statusClass(status) {
    var s = String(status || "").toLowerCase();
    if (s.indexOf("wait") >= 0 || s.indexOf("pending") >= 0) return "waiting";
    return s.replace(/[^a-z_]/g, "");
  }

  function canDeliver(n) {
    if (typeof n.can_deliver === "boolean") return n.can_deliver;
    return String(n.status || "").toLowerCase().indexOf("wait") >= 0;
  }

  function renderNumbers(numbers) {
    el.panelNumbers.textContent = "";
    if (!numbers || !numbers.length) {
      el.panelNumbers.appendChild(h("div", { className: "muted", text: "No numbers yet." }));
      return;
    }
    numbers.forEach(function (n) {
      var card = h("div", {
        className: "number-card",
        "data-testid": "panel-number",
        "data-activation-id": n.activation_id,
        "data-status": n.status,
      }, [
        h("div", { className: "number-top" }, [
          h("span", { className: "number-service", text: n.service || "?" }),
          h("span", { className: "status " + statusClass(n.status), text: String(n.status || "") }),
        ]),
        h("div", { className: "number-phone", text: n.phone || "" }),
        n.code ? h("div", { className: "number-code" }, ["Code: ", h("b", { text: String(n.code) })]) : null,
      ]);
      if (canDeliver(n)) {
        var btn = h("button", {
          type: "button",
          className: "deliver-btn",
          "data-testid": "deliver-sms",
          "data-activation-id": n.activation_id,
          text: "Deliver SMS now",
        });
        btn.addEventListener("click", function () {
          btn.disabled = true;
          api("POST", "/api/panel/sms", { activation_id: String(n.activation_id) })
            .then(function (res) { showToast(res.result || "SMS delivered"); })
            .catch(function (err) { showToast("SMS failed: " + err.message); })
            .then(function () { btn.disabled = false; refreshPanel(); });
        });
        card.appendChild(btn);
      }
      el.panelNumbers.appendChild(card);
    });
  }

  function renderInfo(panel) {
    el.panelInfo.textContent = "";
    var keys = Object.keys(panel).filter(function (k) {
      var v = panel[k];
      return k !== "wallet" && k !== "numbers" && k !== "notes" &&
        (typeof v === "string" || typeof v === "number" || typeof v === "boolean");
    });
    keys.forEach(function (k) {
      el.panelInfo.appendChild(h("dt", { text: k.replace(/_/g, " ") }));
      el.panelInfo.appendChild(h("dd", { text: String(panel[k]) }));
    });
    el.panelInfoSection.hidden = keys.length === 0;
  }

  // The notes banner can be hidden (×) and shown again (ℹ️); hiding is
  // remembered per set of notes, so changed notes show up again.
  var NOTES_KEY = "daisybot-playground-notes-hidden";
  var notesText = "";

  function notesHidden() {
    try { return notesText !== "" && localStorage.getItem(NOTES_KEY) === notesText; } catch (e) { return false; }
  }

  function applyBannerVisibility() {
    var has = notesText !== "";
    var hide = notesHidden();
    el.banner.hidden = !has || hide;
    el.bannerShow.hidden = !has || !hide;
    el.bannerShow.setAttribute("aria-expanded", has && !hide ? "true" : "false");
    updateBannerFade();
  }

  function setNotesHidden(hide) {
    try {
      if (hide) localStorage.setItem(NOTES_KEY, notesText);
      else localStorage.removeItem(NOTES_KEY);
    } catch (e) { /* private mode: just not remembered */ }
    applyBannerVisibility();
    (hide ? el.bannerShow : el.bannerClose).focus();
  }

  function updateBannerFade() {
    var b = el.bannerLines;
    b.classList.toggle("more", b.scrollHeight - b.scrollTop - b.clientHeight > 2);
  }

  el.bannerLines.addEventListener("scroll", updateBannerFade, { passive: true });
  window.addEventListener("resize", updateBannerFade);
  el.bannerClose.addEventListener("click", function () { setNotesHidden(true); });
  el.bannerShow.addEventListener("click", function () { setNotesHidden(false); });

  function renderBanner(notes) {
    var list = (notes || []).filter(function (n) { return n !== null && n !== undefined && String(n).trim(); })
      .map(String);
    var text = list.join("\n");
    if (text === notesText && el.bannerLines.childNodes.length === list.length) { applyBannerVisibility(); return; }
    notesText = text;
    el.bannerLines.textContent = "";
    list.forEach(function (note) {
      el.bannerLines.appendChild(h("div", { className: "banner-line", "data-testid": "banner-line", text: note }));
    });
    applyBannerVisibility();
  }

  function renderWallet(wallet) {
    el.panelWallet.textContent = "";
    var raw = wallet !== undefined && wallet !== null && String(wallet).trim() ? String(wallet) : "—";
    // "Alice: $10.00 · Bob: $8.15" -> one line per account
    raw.split(/\s+·\s+/).forEach(function (part) {
      var m = /^(.*?):\s*(.+)$/.exec(part);
      var li = m
        ? h("li", { "data-testid": "wallet-line" }, [
          h("span", { className: "wallet-name", text: m[1] + ": " }),
          h("span", { className: "wallet-amount", text: m[2] }),
        ])
        : h("li", { "data-testid": "wallet-line", text: part });
      el.panelWallet.appendChild(li);
    });
  }

  function refreshPanel() {
    if (!state.panelEnabled) return Promise.resolve();
    return api("GET", "/api/panel").then(function (data) {
      if (!data.enabled) { disablePanel(); return; }
      var panel = data.panel || {};
      el.panelError.hidden = true;
      renderWallet(panel.wallet);
      renderNumbers(panel.numbers);
      renderInfo(panel);
      renderBanner(panel.notes);
    }).catch(function (err) {
      el.panelError.textContent = "Panel unavailable: " + err.message;
      el.panelError.hidden = false;
    });
  }

  var panelRefreshPending = null;
  function schedulePanelRefresh() {
    if (!state.panelEnabled || panelRefreshPending) return;
    panelRefreshPending = setTimeout(function () { panelRefreshPending = null; refreshPanel(); }, 250);
  }

  function disablePanel() {
    state.panelEnabled = false;
    el.panel.hidden = true;
    el.panelToggle.hidden = true;
    setPanelOpen(false);
    clearInterval(state.panelTimer);
  }

  function enablePanel() {
    state.panelEnabled = true;
    el.panel.hidden = false;
    el.panelToggle.hidden = false;
    refreshPanel();
    clearInterval(state.panelTimer);
    state.panelTimer = setInterval(function () {
      if (!document.hidden) refreshPanel();
    }, 3000);
  }

  function setPanelOpen(open) {
    el.panel.classList.toggle("open", open);
    el.panelBackdrop.hidden = !open;
    el.panelToggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) el.panelClose.focus();
  }
  el.panelToggle.addEventListener("click", function () { setPanelOpen(!el.panel.classList.contains("open")); });
  el.panelClose.addEventListener("click", function () { setPanelOpen(false); el.panelToggle.focus(); });
  el.panelBackdrop.addEventListener("click", function () { setPanelOpen(false); });

  // ------------------------------------------------------------------ boot
  // "Dariush · fa · فارسی (1005)": the language each demo user's Telegram client sends
  // (from.language_code), with its name in that language when the browser knows it.
  function languageName(code) {
    try {
      var name = new Intl.DisplayNames([code], { type: "language" }).of(code);
      return name && name.toLowerCase() !== code.toLowerCase() ? name : "";
    } catch (e) {
      return "";
    }
  }

  function userLabel(u) {
    var label = u.name;
    if (u.language_code) {
      var native = languageName(u.language_code);
      label += " · " + u.language_code + (native ? " · " + native : "");
    }
    return label + " (" + u.id + ")";
  }

  function pickInitialUser(users) {
    var fromUrl = new URLSearchParams(location.search).get("user");
    var stored = null;
    try { stored = localStorage.getItem("daisybot-playground-user"); } catch (e) { stored = null; }
    var ids = users.map(function (u) { return String(u.id); });
    if (fromUrl && ids.indexOf(fromUrl) >= 0) return Number(fromUrl);
    if (stored && ids.indexOf(stored) >= 0) return Number(stored);
    return users[0].id;
  }

  function boot() {
    api("GET", "/api/users").then(function (data) {
      state.users = data.users;
      state.bot = data.bot;
      document.title = data.title || document.title;
      el.botName.textContent = data.bot.first_name || "Bot";
      if (data.bot.username) {
        el.botName.appendChild(h("span", { className: "bot-username", text: " @" + data.bot.username }));
      }
      el.botName.title = el.botName.textContent;
      el.botAvatar.textContent = (data.bot.first_name || "B").charAt(0).toUpperCase();
      el.userPicker.textContent = "";
      data.users.forEach(function (u) {
        el.userPicker.appendChild(h("option", {
          value: String(u.id), text: userLabel(u), "data-lang": u.language_code || null,
        }));
      });
      if (data.panel) enablePanel(); else disablePanel();
      return selectUser(pickInitialUser(data.users));
    }).catch(function (err) {
      setStatus("offline", "offline");
      showToast("Could not reach the playground: " + err.message, 6000);
      setTimeout(boot, 2000);
    });
  }

  window.daisybotPlayground = { state: state, sendText: sendText, refreshPanel: refreshPanel };
  boot();
})();
