/* The sale page: countdown on the server's clock, remaining stock, the buy button and the
   buyer's order. The HTML is cached and the same for everyone; everything personal or live
   comes from the JSON API here, after load (site.js provides window.qbuy). */
(function () {
  "use strict";

  var TICK_MS = 250; // the countdown's refresh: a second boundary is never shown late by much
  var STOCK_POLL_MS = 3000; // remaining stock while the sale is live
  var IDLE_POLL_MS = 30000; // before the start: re-learn the clock offset now and then
  var ORDER_POLL_FIRST_MS = 1000; // a pending order: first poll, then backing off ...
  var ORDER_POLL_MAX_MS = 5000; // ... up to this

  var STATES = {
    upcoming: "Opens soon",
    open: "On sale now",
    sold_out: "Sold out",
    ended: "Ended",
  };
  // The codes in words; any other reason (the shop's cancel and its message) is shown as it is.
  var REASONS = { sold_out: "sold out", timeout: "it timed out" };

  var section, saleId, startsAt, endsAt, els;
  var sale = { remaining: null, stock: null };
  var offset = 0; // server clock - browser clock, in ms
  var bestRoundTrip = Infinity;
  var order = null; // the buyer's order for this sale: {order, status, reason}
  var inFlight = false;
  var retryAt = 0; // after a 429: no buy before this (server clock)
  var loggedIn; // true, false, or undefined (unknown: not answered yet, or an error)
  var meAnswered = false; // no buy before GET /api/auth/me answered
  var pollTimer = null;

  function serverNow() {
    return Date.now() + offset;
  }

  function state(now) {
    if (now < startsAt) return "upcoming";
    if (now >= endsAt) return "ended";
    return sale.remaining !== null && sale.remaining <= 0 ? "sold_out" : "open";
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // 65 s -> "1:05"; 3725 s -> "1:02:05"; a day or more -> "2 days, 1:02:05".
  function clock(ms) {
    var total = Math.max(0, Math.ceil(ms / 1000));
    var days = Math.floor(total / 86400);
    var h = Math.floor((total % 86400) / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    var text = h || days ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
    return days ? days + (days === 1 ? " day, " : " days, ") + text : text;
  }

  function say(text, withLogin) {
    els.orderState.textContent = text;
    if (withLogin) {
      var link = document.createElement("a");
      link.id = "login-link";
      link.href = "/login/?next=" + encodeURIComponent("/sales/" + saleId + "/");
      link.textContent = "Log in";
      els.orderState.appendChild(document.createTextNode(" "));
      els.orderState.appendChild(link);
    }
  }

  var lastSaid = null;
  function sayOnce(text, withLogin) {
    if (text === lastSaid) return;
    lastSaid = text;
    say(text, withLogin);
  }

  function render() {
    var now = serverNow();
    var current = state(now);
    if (els.status.getAttribute("data-state") !== current) {
      els.status.setAttribute("data-state", current);
      els.status.className = "badge badge-" + current;
      els.status.textContent = STATES[current];
    }
    var countdown = "";
    if (current === "upcoming") countdown = "Opens in " + clock(startsAt - now);
    else if (current === "ended") countdown = "This sale has ended.";
    else if (endsAt - now < 86400000) countdown = "Ends in " + clock(endsAt - now);
    else countdown = "Ends " + els.endsText;
    if (els.countdown.textContent !== countdown) els.countdown.textContent = countdown;
    if (sale.remaining !== null) {
      var left = sale.remaining + " of " + sale.stock + " left";
      if (els.remaining.textContent !== left) els.remaining.textContent = left;
    }
    var hasOrder = order && order.status !== "failed";
    if (!order) {
      // What the sale's state says to a buyer without an order; a message a click produced
      // (an error, a 429) stays until the state itself changes.
      if (current === "sold_out") sayOnce("Sold out.");
      else if (current === "ended") sayOnce("This sale has ended.");
      else if (loggedIn === false) sayOnce("Please log in to buy.", true);
    }
    // Not before the sale's first answer: until then a sold-out sale looks open (remaining null).
    var hadFocus = document.activeElement === els.button;
    els.button.disabled =
      inFlight || hasOrder || current !== "open" || now < retryAt || !meAnswered ||
      sale.remaining === null;
    var label = !hasOrder ? "Buy now" : order.status === "confirmed" ? "Bought" : "Ordered";
    if (els.button.textContent !== label) els.button.textContent = label;
    // A disabled button drops the keyboard's focus to the page: move it to the answer.
    if (hadFocus && els.button.disabled) els.orderState.focus();
    return current;
  }

  // GET /api/sales/{id}: remaining stock, and the clock offset from server_time. The server
  // answered at some moment within the round trip: half of it is the best guess, and the
  // sample with the shortest round trip is the most precise one.
  function refreshSale() {
    var sent = performance.now();
    return window.qbuy.api("/api/sales/" + saleId).then(function (answer) {
      var roundTrip = performance.now() - sent;
      if (answer.status !== 200 || !answer.body) return;
      var body = answer.body;
      sale.remaining = body.remaining;
      sale.stock = body.stock;
      startsAt = Date.parse(body.starts_at);
      endsAt = Date.parse(body.ends_at);
      var serverTime = Date.parse(body.server_time);
      if (!isNaN(serverTime) && roundTrip <= bestRoundTrip) {
        bestRoundTrip = roundTrip;
        offset = serverTime + roundTrip / 2 - Date.now();
      }
      render();
    });
  }

  function schedulePoll() {
    var current = state(serverNow());
    if (current === "ended") return;
    var wait = current === "upcoming" ? Math.min(IDLE_POLL_MS, startsAt - serverNow()) : STOCK_POLL_MS;
    window.setTimeout(function () {
      refreshSale().then(schedulePoll, schedulePoll);
    }, Math.max(wait, 500));
  }

  function showOrder(found) {
    order = found;
    if (found.status === "confirmed") {
      say("Confirmed! Your order is placed.");
      var link = document.createElement("a");
      link.href = "/orders/";
      link.textContent = "See your orders";
      els.orderState.appendChild(document.createTextNode(" "));
      els.orderState.appendChild(link);
    } else if (found.status === "failed") {
      var reason = REASONS[found.reason] || String(found.reason || "unknown");
      say("Your order failed: " + reason + ".");
    } else {
      say("Order received — confirming…");
    }
    render();
  }

  function pollOrder(token, wait) {
    window.clearTimeout(pollTimer);
    pollTimer = window.setTimeout(function () {
      window.qbuy.api("/api/orders/" + encodeURIComponent(token)).then(function (answer) {
        var next = Math.min(wait * 1.5, ORDER_POLL_MAX_MS);
        if (answer.status === 200 && answer.body) {
          showOrder(answer.body);
          if (answer.body.status === "pending") pollOrder(token, next);
          else refreshSale();
        } else if (answer.status === 401) {
          loggedIn = false;
          say("Please log in to buy.", true);
        } else {
          pollOrder(token, next); // an outage or a lost answer: the order is still there
        }
      });
    }, wait);
  }

  function retryAfter(answer) {
    var header = parseInt(answer.headers.get("Retry-After"), 10);
    if (header > 0) return header;
    var body = answer.body && parseInt(answer.body.retry_after, 10);
    return body > 0 ? body : 5;
  }

  function refused(answer) {
    var code = answer.body && answer.body.error;
    if (answer.status === 401) {
      loggedIn = false;
      lastSaid = "Please log in to buy.";
      say(lastSaid, true);
      document.getElementById("login-link").focus();
    } else if (answer.status === 429) {
      var seconds = retryAfter(answer);
      retryAt = serverNow() + seconds * 1000;
      say("Too many requests: try again in " + seconds + " s.");
      window.setTimeout(render, seconds * 1000 + 50);
    } else if (code === "sold_out") {
      sale.remaining = 0;
      say("Sold out.");
    } else if (code === "ended") {
      say("This sale has ended.");
    } else if (code === "not_started") {
      say("This sale has not started yet.");
      refreshSale(); // our clock was off: learn it again
    } else if (code === "already_bought") {
      say("You already have an order for this sale.");
      order = order || { status: "pending" };
      loadOrder();
    } else if (code === "csrf_failed") {
      window.qbuy.csrf(true).catch(function () {});
      say("Something went wrong (your session's security token expired); try again.");
    } else {
      var what = code ? code.replace(/_/g, " ") : answer.status ? "HTTP " + answer.status : "no answer";
      say("Something went wrong (" + what + "); try again.");
    }
  }

  function buy() {
    if (els.button.disabled) return;
    inFlight = true;
    render();
    say("Placing your order…");
    window.qbuy
      .csrf()
      .then(function (token) {
        return window.qbuy.api("/api/sales/" + saleId + "/buy", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": token },
          body: JSON.stringify({ quantity: 1 }),
        });
      })
      .catch(function () {
        return { status: 0, body: null, headers: new Headers() };
      })
      .then(function (answer) {
        inFlight = false;
        if (answer.status === 202 && answer.body) {
          showOrder({ order: answer.body.order, status: answer.body.status });
          if (answer.body.status === "pending") pollOrder(answer.body.order, ORDER_POLL_FIRST_MS);
          else refreshSale();
        } else {
          refused(answer);
        }
        render();
      });
  }

  // The buyer's order for this sale, if any (GET /api/orders/?sale=): its state on load.
  function loadOrder() {
    return window.qbuy.api("/api/orders/?sale=" + saleId).then(function (answer) {
      if (answer.status !== 200 || !answer.body) return;
      var found = answer.body.results[0];
      if (!found) return;
      showOrder(found);
      if (found.status === "pending") pollOrder(found.order, ORDER_POLL_FIRST_MS);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    section = document.getElementById("sale");
    if (!section || !window.qbuy) return;
    saleId = section.getAttribute("data-sale");
    startsAt = Date.parse(section.getAttribute("data-starts"));
    endsAt = Date.parse(section.getAttribute("data-ends"));
    els = {
      status: document.getElementById("sale-status"),
      countdown: document.getElementById("countdown"),
      remaining: document.getElementById("remaining"),
      button: document.getElementById("buy-button"),
      orderState: document.getElementById("order-state"),
    };
    els.endsText = section.querySelector(".ends-at").textContent;
    els.button.addEventListener("click", buy);

    window.qbuy.me().then(function (user) {
      loggedIn = user ? true : user === null ? false : undefined;
      meAnswered = true;
      if (loggedIn) loadOrder();
      render();
    });
    refreshSale().then(schedulePoll, schedulePoll);
    var last = null;
    window.setInterval(function () {
      var now = state(serverNow());
      if (last === "upcoming" && now === "open") refreshSale(); // the start: fresh stock
      last = render();
    }, TICK_MS);
    render();
  });
})();
