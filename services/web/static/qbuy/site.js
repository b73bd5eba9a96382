/* Every page: the header (who is logged in, from GET /api/auth/me) and <time> elements in
   words. The pages are cached and shared, so everything personal is filled in here, after
   load. A file, not an inline script: the Content-Security-Policy allows 'self' scripts only. */
(function () {
  "use strict";

  // GET/POST the JSON API; resolves to {status, body, headers} (status 0: no answer at all).
  function api(path, options) {
    var init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    init.headers = Object.assign({ Accept: "application/json" }, init.headers);
    return fetch(path, init).then(
      function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (body) {
            return { status: response.status, body: body, headers: response.headers };
          });
      },
      function () {
        return { status: 0, body: null, headers: new Headers() };
      }
    );
  }

  var mePromise = null;
  // The logged-in user ({id, phone}), null when logged out, undefined when unknown (an error).
  function me() {
    if (!mePromise) {
      mePromise = api("/api/auth/me").then(function (answer) {
        if (answer.status === 200 && answer.body && answer.body.user) return answer.body.user;
        if (answer.status === 401) return null;
        return undefined;
      });
    }
    return mePromise;
  }

  var csrfPromise = null;
  // The CSRF token for X-CSRFToken / csrfmiddlewaretoken. Asked of the API, not read from the
  // cookie (which may be HttpOnly); ``fresh`` after a 403 csrf_failed.
  function csrf(fresh) {
    if (!csrfPromise || fresh) {
      csrfPromise = api("/api/auth/csrf").then(function (answer) {
        if (answer.status !== 200 || !answer.body) {
          csrfPromise = null;
          throw new Error("csrf " + answer.status);
        }
        return answer.body.csrf_token;
      });
    }
    return csrfPromise;
  }

  function here() {
    return window.location.pathname + window.location.search;
  }

  function loginUrl() {
    return "/login/?next=" + encodeURIComponent(here());
  }

  function fillHeader() {
    var who = document.getElementById("who");
    var login = document.getElementById("login-nav");
    if (!who || !login) return;
    me().then(function (user) {
      if (user) {
        document.getElementById("who-phone").textContent = user.phone;
        var form = document.getElementById("logout-form");
        form.elements.next.value = here();
        // The token is asked for only when the buyer is about to log out: most page views
        // never need one, and a cached page may not carry one.
        form.addEventListener("submit", function (event) {
          if (form.elements.csrfmiddlewaretoken.value) return;
          event.preventDefault();
          csrf().then(
            function (token) {
              form.elements.csrfmiddlewaretoken.value = token;
              form.submit();
            },
            function () {
              window.location.href = "/account/";
            }
          );
        });
        who.hidden = false;
        login.hidden = true;
      } else if (user === null) {
        login.href = loginUrl();
        login.hidden = false;
        who.hidden = true;
      }
    });
  }

  // --- times in words ------------------------------------------------------------------------

  function plural(n, unit) {
    return n + " " + unit + (n === 1 ? "" : "s");
  }

  // "3 min", "2 h 5 min", "under a minute": a duration a person reads, rounded up.
  function inWords(ms) {
    var minutes = Math.ceil(ms / 60000);
    if (ms < 60000) return "under a minute";
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
    return plural(Math.round(hours / 24), "day");
  }

  // <time datetime data-verb="opens|ends|ended">: "opens in 3 min", "ends in 12 min"; a moment
  // far away keeps the absolute text the server wrote ("ends 15:30 UTC").
  function refineTimes(now) {
    var times = document.querySelectorAll("time[data-verb]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var verb = el.getAttribute("data-verb");
      var left = Date.parse(el.getAttribute("datetime")) - now;
      if (!el.hasAttribute("data-absolute")) el.setAttribute("data-absolute", el.textContent);
      var text = el.getAttribute("data-absolute");
      if (verb === "opens") {
        text = left > 0 ? "opens in " + inWords(left) : "opened";
      } else if (verb === "ends") {
        if (left <= 0) text = "ended";
        else if (left < 3600000) text = "ends in " + inWords(left);
      }
      el.textContent = text;
      el.title = el.getAttribute("data-absolute");
    }
  }

  window.qbuy = { api: api, me: me, csrf: csrf, loginUrl: loginUrl, inWords: inWords };

  document.addEventListener("DOMContentLoaded", function () {
    fillHeader();
    refineTimes(Date.now());
    if (document.querySelector("time[data-verb]")) {
      window.setInterval(function () {
        refineTimes(Date.now());
      }, 15000);
    }
  });
})();
