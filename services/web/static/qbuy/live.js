/* The admin's live sale view (templates/admin/sales/sale/live.html): asks for the sale's
   figures every second while it runs and draws them as plain SVG line charts, each current
   figure also in words. Stops once the sale has ended, and says so. */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var RETRY_MS = 5000; // after a failed poll: an outage is not helped by asking every second
  var HEIGHT = 190;
  var PAD = { top: 12, right: 16, bottom: 26, left: 52 };
  var SVG = "http://www.w3.org/2000/svg";
  // The outcomes in words, in the legend's order; live.css gives each its colour and dashes.
  var OUTCOMES = {
    accepted: "Accepted",
    sold_out: "Sold out",
    already_bought: "Already bought",
    over_limit: "Over the limit",
    not_started: "Not open yet",
    ended: "Ended",
    rate_limited: "Rate limited",
    unavailable: "Unavailable (503)",
    error: "Server error",
    not_authenticated: "Not logged in",
    not_found: "No such sale",
    invalid: "Invalid request",
  };
  var ORDER = Object.keys(OUTCOMES);
  var STATES = { upcoming: "Upcoming", open: "Open", sold_out: "Sold out", ended: "Ended" };

  var root = document.getElementById("content-main");
  var url = root && root.getAttribute("data-url");
  if (!url) return;
  // The server gives stock and orders as they are now: their history is what this page saw.
  var seen = { stock: [], pending: [] };
  var latest = null;
  var shown = {};

  // Write a figure only when it changed: each write to a live region is read out.
  function say(id, text) {
    if (shown[id] === text) return;
    shown[id] = text;
    document.getElementById(id).textContent = text;
  }

  function words(outcome) {
    var text = OUTCOMES[outcome] || outcome.replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function plural(n, one, many) {
    return n.toLocaleString("en") + " " + (n === 1 ? one : many);
  }

  function ms(value) {
    return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
  }

  function node(name, attrs, parent) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) {
      el.setAttribute(key, attrs[key]);
    });
    parent.appendChild(el);
    return el;
  }

  // The axis' top: the smallest of 1, 2, 2.5, 5 x 10^n that holds ``value``.
  function axisTop(value, least) {
    value = Math.max(value, least);
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= value) return steps[i] * power;
    }
    return 10 * power;
  }

  /* series: [{kind, points: [[second, value or null], ...]}], drawn over the ``seconds``
     seconds up to ``end``; a null value breaks the line. opts: format (a tick's label), and
     top (the axis' top) or least (the least top it may have). */
  function draw(svg, series, end, seconds, opts) {
    var width = Math.max(240, Math.round(svg.getBoundingClientRect().width));
    svg.setAttribute("viewBox", "0 0 " + width + " " + HEIGHT);
    svg.replaceChildren();
    var start = end - seconds + 1;
    var left = PAD.left, right = width - PAD.right;
    var bottom = HEIGHT - PAD.bottom, top = PAD.top;
    var highest = 0;
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (p[0] >= start && p[1] !== null) highest = Math.max(highest, p[1]);
      });
    });
    var max = opts.top || axisTop(highest, opts.least);
    var x = function (second) {
      return left + ((right - left) * (second - start)) / (seconds - 1);
    };
    var y = function (value) {
      return bottom - ((bottom - top) * value) / max;
    };
    [0, max / 2, max].forEach(function (value) {
      node("line", { x1: left, x2: right, y1: y(value), y2: y(value), class: "grid" }, svg);
      var label = node("text", { x: left - 6, y: y(value) + 4, class: "tick tick-y" }, svg);
      label.textContent = opts.format(value);
    });
    [
      [start, seconds + " s ago", "start"],
      [start + (seconds - 1) / 2, Math.round(seconds / 2) + " s ago", "middle"],
      [end, "now", "end"],
    ].forEach(function (tick) {
      var label = node("text", { x: x(tick[0]), y: HEIGHT - 6, class: "tick tick-x" }, svg);
      label.setAttribute("text-anchor", tick[2]);
      label.textContent = tick[1];
    });
    series.forEach(function (s) {
      var path = "", pen = false, last = null;
      s.points.forEach(function (p) {
        if (p[0] < start || p[1] === null) {
          pen = false;
          return;
        }
        path += (pen ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
        pen = true;
        last = p;
      });
      if (path) node("path", { d: path, class: "line " + s.kind }, svg);
      // The newest value as a dot: a lone point (a first sample, a gap's end) shows too.
      if (last) node("circle", { cx: x(last[0]), cy: y(last[1]), r: 3, class: "dot " + s.kind }, svg);
    });
  }

  function legend(id, items) {
    var list = document.getElementById(id);
    list.replaceChildren();
    items.forEach(function (item) {
      var entry = document.createElement("li");
      var sample = node("svg", { width: 30, height: 10, "aria-hidden": "true" }, entry);
      node("line", { x1: 1, x2: 29, y1: 5, y2: 5, class: "line " + item.kind }, sample);
      entry.appendChild(document.createTextNode(item.text));
      list.appendChild(entry);
    });
  }

  function over(values, data) {
    var start = data.last_second - data.seconds + 1;
    return values.map(function (value, i) {
      return [start + i, value];
    });
  }

  function byOrder(a, b) {
    var ia = ORDER.indexOf(a), ib = ORDER.indexOf(b);
    return (ia < 0 ? ORDER.length : ia) - (ib < 0 ? ORDER.length : ib) || (a < b ? -1 : 1);
  }

  function kind(outcome) {
    return "o-" + (OUTCOMES[outcome] ? outcome : "other");
  }

  function count(value) {
    return String(Math.round(value * 10) / 10);
  }

  function answers(data, end) {
    var chart = document.getElementById("answers-chart");
    if (data.answers === null) {
      say("answers-now", "Per-second figures unavailable: Redis did not answer.");
      return;
    }
    var outcomes = Object.keys(data.answers).sort(byOrder);
    var total = 0;
    var items = outcomes.map(function (outcome) {
      var values = data.answers[outcome];
      total += values[values.length - 1];
      return {
        kind: kind(outcome),
        text: words(outcome) + ": " + values[values.length - 1].toLocaleString("en") + "/s",
        points: over(values, data),
      };
    });
    say("answers-now", "Last second: " + plural(total, "buy answer", "buy answers") + ".");
    draw(chart, items, end, data.seconds, { least: 2, format: count });
    legend("answers-legend", items.length ? items : [{ kind: "o-none", text: "No buys yet" }]);
  }

  function stock(data, end) {
    var where = data.stock_left_from === "redis" ? "" : " (Postgres' figure: not loaded in Redis yet)";
    say(
      "stock-now",
      data.stock_left.toLocaleString("en") + " of " + data.stock.toLocaleString("en") + " left" + where + ".",
    );
    var series = [{ kind: "o-stock", points: seen.stock }];
    draw(document.getElementById("stock-chart"), series, end, data.seconds, {
      top: Math.max(data.stock, 1), // the whole stock: how much of it is gone shows at a glance
      format: count,
    });
  }

  function orders(data, end) {
    var o = data.orders;
    say(
      "orders-now",
      plural(o.pending, "order", "orders") + " pending; " + o.confirmed.toLocaleString("en") +
        " confirmed, " + o.failed.toLocaleString("en") + " failed.",
    );
    var series = [{ kind: "o-pending", points: seen.pending }];
    draw(document.getElementById("orders-chart"), series, end, data.seconds, { least: 2, format: count });
  }

  function settle(data, end) {
    if (data.settle === null) {
      say("settle-now", "Per-second figures unavailable: Redis did not answer.");
      return;
    }
    var s = data.settle, i = s.orders.length - 1;
    say(
      "settle-now",
      s.orders[i]
        ? "Last second: " + plural(s.orders[i], "order", "orders") + " settled, mean " +
            ms(s.mean_ms[i]) + ", slowest " + ms(s.max_ms[i]) + "."
        : "No order settled in the last second.",
    );
    var items = [
      { kind: "o-mean", text: "Mean", points: over(s.mean_ms, data) },
      { kind: "o-max", text: "Slowest", points: over(s.max_ms, data) },
    ];
    draw(document.getElementById("settle-chart"), items, end, data.seconds, {
      least: 10,
      format: ms,
    });
    legend("settle-legend", items);
  }

  function render() {
    var end = latest.last_second;
    say("live-state", STATES[latest.state] || latest.state);
    answers(latest, end);
    stock(latest, end);
    orders(latest, end);
    settle(latest, end);
    say("live-as-of", "Figures up to " + new Date((end + 1) * 1000).toLocaleTimeString("en-GB") + ".");
  }

  function keep(series, second, value) {
    if (series.length && series[series.length - 1][0] === second) series.pop();
    series.push([second, value]);
    while (series.length && series[0][0] <= second - latest.seconds) series.shift();
  }

  function received(data) {
    latest = data;
    keep(seen.stock, data.last_second, data.stock_left);
    keep(seen.pending, data.last_second, data.orders.pending);
    render();
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        // The admin sends a session it no longer accepts to its login page.
        if (response.redirected || (response.ok && type.indexOf("application/json") !== 0)) {
          throw { stop: "Your admin session has ended: log in again to see the figures." };
        }
        if (response.status === 403 || response.status === 404) {
          throw { stop: "This sale's figures are no longer yours to see (HTTP " + response.status + ")." };
        }
        if (!response.ok) throw { status: response.status };
        return response.json();
      })
      .then(
        function (data) {
          received(data);
          if (data.state === "ended") {
            say("live-status", "The sale has ended: these figures no longer update.");
            return;
          }
          say("live-status", "Updating every second.");
          setTimeout(poll, POLL_MS);
        },
        function (error) {
          if (error && error.stop) {
            say("live-status", error.stop);
            return;
          }
          var why = error && error.status ? "HTTP " + error.status : "no answer";
          say("live-status", "The figures could not be read (" + why + "); trying again in 5 seconds.");
          setTimeout(poll, RETRY_MS);
        },
      );
  }

  window.addEventListener("resize", function () {
    if (latest) render();
  });
  poll();
})();
