/* The sale page: countdown on the server's clock, remaining stock, the buy button and the
   buyer's order; for a sale with a waiting room, the buyer's place in it and the turn to buy.
   The HTML is cached and the same for everyone; everything personal or live comes from the
   JSON API here, after load (site.js provides window.qbuy). */
(function () {
  "use strict";

  var TICK_MS = 250; // the countdown's refresh: a second boundary is never shown late by much
  var STOCK_POLL_MS = 3000; // remaining stock while the sale is live
  var IDLE_POLL_MS = 30000; // before the start: re-learn the clock offset now and then
  var ORDER_POLL_FIRST_MS = 1000; // a pending order: first poll, then backing off ...
  var ORDER_POLL_MAX_MS = 5000; // ... up to this
  // The waiting room: its public state (the same for everyone, cached by the edge) is polled;
  // the buyer's own place is asked only when that cannot tell. The page keeps its place's key
  // (place_key, which never changes) and the room says the key of the last place let in
  // (admitted_key): the buyer is in when hers is at most that, and only then asks for her pass.
  // One personal request per buyer at the draw cost the stack more than the buys did (make
  // loadtest --waiting-room: the buys queued behind 5,000 of them).
  var ROOM_POLL_MS = 2000; // how far the room has let places in, the stock left, the count
  // After the draw, the place's number (what the buyer reads) is asked once, at a moment drawn
  // at random from LOOK_FROM_MS to LOOK_FROM_MS + LOOK_SPREAD_MS: a crowd's lookups spread
  // over those 9 s, none in the draw's first second (the first buys', and everyone's poll).
  // There is no look "now and then" any more: the only change it caught that the public state
  // did not show, a room Redis lost and rebuilt, shows there now (the draw moves: placeLost()).
  var LOOK_FROM_MS = 1000;
  var LOOK_SPREAD_MS = 9000;
  var PLACE_RETRY_MS = 1000; // never asked more often (a place asked for just before the draw)

  var STATES = {
    upcoming: "Opens soon",
    open: "On sale now",
    sold_out: "Sold out",
    ended: "Ended",
  };
  // The codes in words; any other reason (the shop's cancel and its message) is shown as it is.
  var REASONS = { sold_out: "sold out", timeout: "it timed out" };
  var MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");
  var AT_RANDOM = "Places are drawn at random when the sale starts (in ";
  var EARLIER = "arriving earlier does not help.";
  var COME_BACK = "Come back then: places are drawn at random when the sale starts, so " + EARLIER;

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

  // The waiting room, when the sale has one (GET /api/sales/{id} says waiting_room).
  var hasRoom = false;
  var room = null; // its public state: GET /api/sales/{id}/room
  var place = null; // the buyer's place: GET .../room/me or POST .../room; null: not known
  var placeAsked = -Infinity; // serverNow() when the place was last asked
  var lookAfter = LOOK_FROM_MS + Math.random() * LOOK_SPREAD_MS; // ms after the draw
  var placeInFlight = false;
  var orderChecked = false; // loadOrder() answered: a "passed" buyer without an order had none
  var joining = false;
  var joinRetryAt = 0; // after a 429 on joining
  var roomNote = ""; // what the last click on Join produced (a refusal), until the next one
  var roomTimer = null;
  var roomSaid = null; // the room's words last shown, its running clocks left out
  var lastView = null; // the room's view at the last render ("turn": the buyer's turn)
  var lastWords = null; // ... and its words

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

  // A moment as the server's pages write it: "15:30 UTC" today, "Nov 25, 15:30 UTC" otherwise.
  function moment(ms) {
    var d = new Date(ms);
    var today = new Date(serverNow());
    var time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
    if (d.toISOString().slice(0, 10) === today.toISOString().slice(0, 10)) return time;
    return MONTHS[d.getUTCMonth()] + " " + d.getUTCDate() + ", " + time;
  }

  function loginHref() {
    return "/login/?next=" + encodeURIComponent("/sales/" + saleId + "/");
  }

  function say(text, withLogin) {
    els.orderState.textContent = text;
    if (withLogin) {
      var link = document.createElement("a");
      link.id = "login-link";
      link.href = loginHref();
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

  function hasOrder() {
    return !!order && order.status !== "failed";
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
    // With a room, the room's box says what the sale's state means to this buyer.
    if (!order && !hasRoom) {
      // What the sale's state says to a buyer without an order; a message a click produced
      // (an error, a 429) stays until the state itself changes.
      if (current === "sold_out") sayOnce("Sold out.");
      else if (current === "ended") sayOnce("This sale has ended.");
      else if (loggedIn === false) sayOnce("Please log in to buy.", true);
    }
    var view = hasRoom ? renderRoom(current, now) : null;
    // Not before the sale's first answer: until then a sold-out sale looks open (remaining null).
    var hadFocus = document.activeElement === els.button;
    els.button.disabled =
      inFlight || hasOrder() || current !== "open" || now < retryAt || !meAnswered ||
      sale.remaining === null || (hasRoom && !myTurn(current, now));
    var label = !hasOrder() ? "Buy now" : order.status === "confirmed" ? "Bought" : "Ordered";
    if (els.button.textContent !== label) els.button.textContent = label;
    // A disabled button drops the keyboard's focus to the page: move it to the answer.
    if (hadFocus && els.button.disabled) els.orderState.focus();
    // The turn comes: the focus left on the room's words (or nowhere) goes to the buy button.
    if (view === "turn" && lastView !== "turn" && !els.button.disabled) {
      var at = document.activeElement;
      if (at === els.roomState || at === document.body || at === null) els.button.focus();
    }
    lastView = view;
    return current;
  }

  // --- the waiting room ------------------------------------------------------------------------

  function inRoom() {
    return !!place && ["drawing", "waiting", "admitted"].indexOf(place.state) >= 0;
  }

  function soldOut(current) {
    return (
      current === "sold_out" ||
      (!!room && room.state === "sold_out") ||
      (!!place && place.state === "sold_out")
    );
  }

  // Nothing more will happen in the room: its polls stop.
  function roomOver() {
    var now = serverNow();
    return soldOut(state(now)) || now >= endsAt || (!!room && room.state === "ended");
  }

  function myTurn(current, now) {
    var admitted = !!place && place.state === "admitted" && !!place.pass;
    return admitted && now < place.expires && !soldOut(current);
  }

  // The room has let the buyer's place in: its public state says so (the places are the keys'
  // order; the room tells the key of the last one let in), the place's own answer may not yet.
  function letIn() {
    var last = room ? room.admittedKey : null;
    return last !== null && place.key !== null && place.key <= last;
  }

  // The room's draw moved after this place's: Redis lost the room and built it again, with
  // none of its places (a sale's start moves only before its draw), and drew again a few
  // seconds on. The place is gone: the page offers to join again, without asking. A pass
  // stays good until it runs out (the gate takes one issued before the room was rebuilt).
  // A room rebuilt before the draw keeps its draw: the look after the draw finds the place out.
  function placeLost() {
    var queued = !!place && ["drawing", "waiting"].indexOf(place.state) >= 0;
    return queued && room.draws !== place.draws && serverNow() >= place.draws;
  }

  // Places still to be let in before the buyer's: the place's own count, or the room's newer
  // one (it only ever goes down).
  function ahead() {
    var fromRoom = room ? place.place - 1 - room.admitted : Infinity;
    var own = place.ahead === null ? Infinity : place.ahead;
    return Math.max(0, Math.min(own, fromRoom));
  }

  // "About 3 s", "About 2 min" at the room's rate (longer if the stock holds admission back).
  function estimate(count) {
    var seconds = Math.ceil((count + 1) / Math.max(1, room ? room.rate : 1));
    return "About " + (seconds < 60 ? seconds + " s" : window.qbuy.inWords(seconds * 1000)) + ".";
  }

  function waitingWords() {
    if (!room) return "";
    var n = room.waiting;
    if (n === 0) return "Nobody is waiting yet.";
    return n + (n === 1 ? " buyer is" : " buyers are") + " waiting.";
  }

  // The room's words for this buyer: [view, parts, detail]. A part is a string, {clock: ms} (a
  // running clock, not announced every second) or {link, text}; the view names the box's look
  // ("join" shows the Join button, "turn" the buyer's turn, "done": an order, the box hidden).
  function roomWords(current, now) {
    if (hasOrder()) return ["done", [], ""]; // #order-state tells the order
    var ended = [room && room.state, place && place.state].indexOf("ended") >= 0;
    if (current === "ended" || ended) return ["over", ["This sale has ended."], ""];
    if (soldOut(current)) {
      var gone = inRoom() ? "Sold out: everything was bought before your turn." : "Sold out.";
      return ["over", [gone], ""];
    }
    if (!room) return ["", [], ""];
    var opens = [];
    if (room.state === "not_open") {
      var at = "The waiting room opens at " + moment(room.opens) + " (in ";
      opens = [at, { clock: room.opens - now }, ")."];
    }
    if (loggedIn === false) {
      var login = [{ link: loginHref(), text: "Log in" }, " to join the waiting room."];
      if (opens.length) return ["out", opens.concat([" "], login), ""];
      return ["out", login, waitingWords()];
    }
    if (opens.length) return ["closed", opens.concat([" " + COME_BACK]), ""];
    if (!place) return ["", ["Looking for your place in the waiting room…"], ""];
    var draw = { clock: room.draws - now };
    var drawn = now >= room.draws;
    var count = waitingWords();
    if (place.state === "out" && drawn)
      return ["join", ["Join the waiting room to buy: you queue behind those in it."], count];
    if (place.state === "out")
      return ["join", ["Join the waiting room to buy. " + AT_RANDOM, draw, "), so " + EARLIER], count];
    if (place.state === "not_open") return ["closed", ["The waiting room is not open yet."], ""];
    if (place.state === "drawing" && drawn && letIn())
      return ["waiting", ["Places are drawn. It's your turn in a moment…"], ""];
    if (place.state === "drawing" && drawn)
      return ["waiting", ["Places are drawn. Finding your place…"], count];
    if (place.state === "drawing")
      return ["waiting", ["You're in the waiting room. " + AT_RANDOM, draw, "); " + EARLIER], count];
    var yours = "Your place: " + place.place + " — ";
    if (place.state === "waiting" && letIn())
      return ["waiting", [yours + "it's your turn in a moment…"], ""];
    if (place.state === "waiting") {
      var before = ahead();
      var line = yours + (before ? before + " ahead of you. " : "you're next. ") + estimate(before);
      if (room.stockLeft > before) return ["waiting", [line], count];
      var few = "Only " + room.stockLeft + " left for the " + before + " ahead of you: ";
      return ["waiting", [line], few + "it may sell out before your turn."];
    }
    if (place.state === "admitted" && now >= place.expires)
      return ["waiting", ["Your pass has run out; checking your place…"], ""];
    if (place.state === "admitted") {
      var expires = "Your pass expires in " + clock(place.expires - now) + ".";
      return ["turn", ["It's your turn (place " + place.place + "): buy now."], expires];
    }
    if (place.state === "passed" && orderChecked)
      return ["over", ["Your turn has passed: your pass ran out before a buy."], ""];
    if (place.state === "passed") return ["", ["Looking for your order…"], ""];
    return ["", [], ""];
  }

  function roomSay(view, parts) {
    var shown = parts.map(function (part) {
      return typeof part === "string" ? part : part.link ? "[" + part.text + "]" : "\u23f1";
    });
    var key = view + "|" + roomNote + "|" + shown.join("");
    var line = els.roomState;
    if (key !== roomSaid) {
      roomSaid = key;
      els.room.setAttribute("data-room", view);
      line.textContent = "";
      parts.forEach(function (part) {
        var el;
        if (typeof part === "string") {
          line.appendChild(document.createTextNode(part));
          return;
        }
        if (part.link) {
          el = document.createElement("a");
          el.id = "room-login-link";
          el.href = part.link;
          el.textContent = part.text;
        } else {
          // role=timer: its every second is not read out; the words around it are.
          el = document.createElement("span");
          el.className = "room-clock";
          el.setAttribute("role", "timer");
          el.setAttribute("aria-live", "off");
        }
        line.appendChild(el);
      });
      if (roomNote) line.appendChild(document.createTextNode(" " + roomNote));
    }
    var clocks = line.querySelectorAll(".room-clock");
    parts.filter(function (part) {
      return part.clock !== undefined;
    }).forEach(function (part, i) {
      var text = clock(part.clock);
      if (clocks[i].textContent !== text) clocks[i].textContent = text;
    });
  }

  function renderRoom(current, now) {
    // While the buy is on its way, the turn stays shown: the stock it takes is not "sold out".
    var words = inFlight && lastWords ? lastWords : roomWords(current, now);
    lastWords = words;
    var view = words[0];
    els.room.hidden = view === "done";
    roomSay(view, words[1]);
    if (els.roomDetail.textContent !== words[2]) els.roomDetail.textContent = words[2];
    var joinHadFocus = document.activeElement === els.join;
    els.join.hidden = view !== "join";
    els.join.disabled = joining || now < joinRetryAt;
    // Join and a disabled Buy side by side would be two buttons for one step.
    els.button.hidden = view === "join";
    // A pressed Join is disabled, then gone: the focus goes to what joining says.
    if (joinHadFocus && (els.join.hidden || els.join.disabled)) els.roomState.focus();
    return view;
  }

  function setRoom(body) {
    room = {
      state: body.state,
      opens: Date.parse(body.opens_at),
      draws: Date.parse(body.draws_at),
      admitted: body.admitted,
      admittedKey: typeof body.admitted_key === "number" ? body.admitted_key : null,
      waiting: body.waiting,
      rate: body.rate,
      stockLeft: body.stock_left,
    };
    sale.remaining = room.stockLeft; // the gate's count: sooner than the sale's own
  }

  function setPlace(body) {
    var was = place && place.state;
    place = {
      state: body.state,
      place: body.place || null,
      key: typeof body.place_key === "number" ? body.place_key : null,
      ahead: typeof body.ahead === "number" ? body.ahead : null,
      pass: body.pass || null,
      expires: body.pass_expires_at ? Date.parse(body.pass_expires_at) : 0,
      draws: Date.parse(body.draws_at),
    };
    if (place.state === "passed" && was !== "passed") {
      orderChecked = false;
      loadOrder().then(function () {
        orderChecked = true;
        render();
      });
    }
  }

  function pollRoom() {
    window.clearTimeout(roomTimer);
    return window.qbuy.api("/api/sales/" + saleId + "/room").then(function (answer) {
      if (answer.status === 404 && answer.body && answer.body.error === "no_waiting_room") {
        leaveRoom();
        return;
      }
      if (answer.status === 200 && answer.body) {
        setRoom(answer.body);
        if (placeLost()) setPlace({ state: "out", draws_at: answer.body.draws_at });
      }
      if (room && room.state === "sold_out" && loggedIn && !order) loadOrder(); // a buy raced it
      render();
      scheduleRoom();
    });
  }

  function scheduleRoom() {
    if (roomOver()) return;
    var now = serverNow();
    var wait = ROOM_POLL_MS;
    if (room && room.state === "not_open") wait = Math.min(IDLE_POLL_MS, room.opens - now);
    else if (room && room.state === "drawing") wait = Math.min(ROOM_POLL_MS, room.draws - now);
    roomTimer = window.setTimeout(pollRoom, Math.max(wait, 500));
  }

  // Whether the buyer's place is worth asking for now (the tick asks, every TICK_MS).
  function placeDue() {
    var now = serverNow();
    if (!inRoom() || placeInFlight || loggedIn !== true || roomOver()) return false;
    if (now - placeAsked < PLACE_RETRY_MS) return false;
    if (place.state === "admitted") return now >= place.expires; // the turn has passed
    if (letIn()) return true; // the turn: the pass
    return place.state === "drawing" && now >= place.draws + lookAfter; // the place's number
  }

  function fetchPlace() {
    placeInFlight = true;
    placeAsked = serverNow();
    return window.qbuy.api("/api/sales/" + saleId + "/room/me").then(function (answer) {
      placeInFlight = false;
      if (answer.status === 200 && answer.body) setPlace(answer.body);
      else if (answer.status === 401) loggedIn = false;
      render();
    });
  }

  function join() {
    if (els.join.disabled) return;
    joining = true;
    roomNote = "";
    render();
    window.qbuy
      .csrf()
      .then(function (token) {
        return window.qbuy.api("/api/sales/" + saleId + "/room", {
          method: "POST",
          headers: { "X-CSRFToken": token },
        });
      })
      .catch(function () {
        return { status: 0, body: null, headers: new Headers() };
      })
      .then(function (answer) {
        joining = false;
        var code = answer.body && answer.body.error;
        if ((answer.status === 201 || answer.status === 200) && answer.body) {
          setPlace(answer.body); // 200: the place taken before, kept
          placeAsked = serverNow();
          pollRoom(); // the count of those waiting, with this buyer in it
        } else if (answer.status === 401) {
          loggedIn = false;
        } else if (answer.status === 429) {
          var seconds = retryAfter(answer);
          joinRetryAt = serverNow() + seconds * 1000;
          roomNote = "Too many tries from your address: try again in " + seconds + " s.";
          window.setTimeout(render, seconds * 1000 + 50);
        } else if (code === "room_not_open") {
          pollRoom();
        } else if (code === "csrf_failed") {
          window.qbuy.csrf(true).catch(function () {});
          roomNote = "Something went wrong (your session's security token expired); try again.";
        } else {
          var what = code ? code.replace(/_/g, " ") : answer.status ? "HTTP " + answer.status : "no answer";
          roomNote = "Something went wrong (" + what + "); try again.";
        }
        render();
      });
  }

  function enterRoom() {
    hasRoom = true;
    els.room.hidden = false;
    // What the buy box said of the sale's state before the page knew of the room: the room's
    // box says it now (no click can have answered yet: the button waits for the sale).
    if (!order) {
      lastSaid = null;
      say("");
    }
    if (loggedIn && !place && !placeInFlight) fetchPlace();
    pollRoom();
  }

  // The room was switched off: buy as before, without a pass.
  function leaveRoom() {
    hasRoom = false;
    room = place = null;
    window.clearTimeout(roomTimer);
    els.room.hidden = true;
    els.button.hidden = false;
    render();
  }

  // --- the sale and the order ------------------------------------------------------------------

  // GET /api/sales/{id}: remaining stock, and the clock offset from server_time. The server
  // answered at some moment within the round trip: half of it is the best guess, and the
  // sample with the shortest round trip is the most precise one.
  function refreshSale() {
    var sent = performance.now();
    return window.qbuy.api("/api/sales/" + saleId).then(function (answer) {
      var roundTrip = performance.now() - sent;
      if (answer.status !== 200 || !answer.body) return;
      var body = answer.body;
      if (!room) sale.remaining = body.remaining; // with a room, the room's count is newer
      sale.stock = body.stock;
      startsAt = Date.parse(body.starts_at);
      endsAt = Date.parse(body.ends_at);
      var serverTime = Date.parse(body.server_time);
      if (!isNaN(serverTime) && roundTrip <= bestRoundTrip) {
        bestRoundTrip = roundTrip;
        offset = serverTime + roundTrip / 2 - Date.now();
      }
      if (body.waiting_room && !hasRoom) enterRoom();
      render();
    });
  }

  function schedulePoll() {
    var current = state(serverNow());
    if (current === "ended") return;
    var wait = current === "upcoming" ? Math.min(IDLE_POLL_MS, startsAt - serverNow()) : STOCK_POLL_MS;
    if (hasRoom) wait = IDLE_POLL_MS; // the room's polls carry the stock: this is for the clock
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
    } else if (code === "not_admitted") {
      say("Your pass to buy is no longer valid.");
      if (hasRoom) fetchPlace(); // where the buyer stands now
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
    var body = { quantity: 1 };
    if (hasRoom) body.pass = place.pass; // the room's signed pass: the buy refuses one without
    inFlight = true;
    render();
    say("Placing your order…");
    window.qbuy
      .csrf()
      .then(function (token) {
        return window.qbuy.api("/api/sales/" + saleId + "/buy", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": token },
          body: JSON.stringify(body),
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
      room: document.getElementById("room"),
      roomState: document.getElementById("room-state"),
      roomDetail: document.getElementById("room-detail"),
      join: document.getElementById("room-join"),
    };
    els.endsText = section.querySelector(".ends-at").textContent;
    els.button.addEventListener("click", buy);
    els.join.addEventListener("click", join);

    window.qbuy.me().then(function (user) {
      loggedIn = user ? true : user === null ? false : undefined;
      meAnswered = true;
      if (loggedIn) loadOrder();
      if (loggedIn && hasRoom && !place && !placeInFlight) fetchPlace();
      render();
    });
    refreshSale().then(schedulePoll, schedulePoll);
    var last = null;
    window.setInterval(function () {
      var now = state(serverNow());
      if (last === "upcoming" && now === "open") refreshSale(); // the start: fresh stock
      if (hasRoom && placeDue()) fetchPlace();
      last = render();
    }, TICK_MS);
    render();
  });
})();
