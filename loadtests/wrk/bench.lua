-- wrk script of `make bench` (loadtests/bench.py runs it; loadtests/wrk.py parses its output).
--
-- wrk -s bench.lua <url> -- mode=<mode> threads=<N> [tally=<header>] [sessions=<file>]
--     [done_file=<file>]
--
-- Every mode counts the answers by status, the error codes of 4xx/5xx JSON bodies and,
-- with tally=, the values of one response header (X-Micro-Cache: HIT...; "-" when absent).
-- The same response() runs in every mode, so every scenario pays the same client cost.
--
--   get     the URL as given, one request built once (wrk's fast path)
--   bust    GET the URL with a new query string each time (?bust=<thread>-<n>), as a script
--           trying to get past the caches would
--   storm   POST the URL (a buy) with body {}, rotating over every session of the file, each
--           thread from its own offset: most buyers ask many times
--   once    POST the URL once per session: thread i of N owns sessions i, i+N, ...; when its
--           sessions are all asked, a connection waits instead of asking again, and the thread
--           stops at its last answer (then appends a line to done_file, so the harness can
--           stop wrk without waiting out its duration)
--
-- The sessions file has one line per logged-in buyer: "<SESSION_ID> <csrftoken>".
-- done() prints one line "BENCH-JSON {...}" with wrk's summary, latency percentiles and each
-- thread's counts, last answer (and in once mode first request; epoch seconds) and the 202
-- order tokens.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_REALTIME = 0
local ts = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_REALTIME, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local WAIT_FOREVER = 3600 * 1000 -- ms: a "once" connection with nothing left to ask

-- setup/done run in wrk's main Lua state; everything below init() runs in each thread's own.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Per-thread state (globals, so done() can read them with thread:get).
statuses, errors, tallies = {}, {}, {}
tokens = {}
answered, first, last = 0, 0, 0

local mode, tally_header, done_file
local requests, issued, reserved, quota = {}, 0, 0, 0

local function read_sessions(path)
  local sessions = {}
  for line in io.lines(path) do
    local sid, csrf = line:match("^(%S+)%s+(%S+)$")
    if sid then
      table.insert(sessions, { sid = sid, csrf = csrf })
    end
  end
  return sessions
end

local function buy_request(session)
  return wrk.format("POST", wrk.path, {
    ["Cookie"] = "SESSION_ID=" .. session.sid .. "; csrftoken=" .. session.csrf,
    ["X-CSRFToken"] = session.csrf,
    ["Content-Type"] = "application/json",
  }, "{}")
end

function init(args)
  local opts = {}
  for _, arg in ipairs(args) do
    local k, v = arg:match("^([%w_]+)=(.*)$")
    if k then
      opts[k] = v
    end
  end
  mode = opts.mode or "get"
  tally_header = opts.tally
  done_file = opts.done_file
  local n_threads = tonumber(opts.threads or "1")

  if mode == "storm" or mode == "once" then
    local sessions = read_sessions(opts.sessions)
    if #sessions == 0 then
      error("no sessions in " .. tostring(opts.sessions))
    end
    if mode == "storm" then
      -- Every thread rotates over all sessions, starting at its own share of the list.
      local offset = math.floor((id - 1) * #sessions / n_threads)
      for i = 1, #sessions do
        requests[i] = buy_request(sessions[(offset + i - 1) % #sessions + 1])
      end
    else
      for i = id, #sessions, n_threads do
        table.insert(requests, buy_request(sessions[i]))
      end
      quota = #requests
    end
  end

  -- wrk reads these globals after init(): no request() means one request built once, no
  -- delay() means no timer before each request.
  if mode == "get" then
    request = nil
  end
  if mode ~= "once" then
    delay = nil
  end
end

function request()
  if mode == "bust" then
    issued = issued + 1
    return wrk.format("GET", wrk.path .. "?bust=" .. id .. "-" .. issued)
  end
  if mode == "storm" then
    issued = issued + 1
    return requests[(issued - 1) % #requests + 1]
  end
  -- once: the request delay() reserved. wrk also calls request() once without delay() to check
  -- what it builds, and again after a socket error (the same request is sent again): neither
  -- takes a new buyer.
  if issued < reserved then
    issued = issued + 1
    if first == 0 then
      first = now()
    end
  end
  return requests[math.max(issued, 1)]
end

function delay()
  -- once only (init() removes it otherwise): reserve a session, or wait out the run.
  if reserved >= quota then
    return WAIT_FOREVER
  end
  reserved = reserved + 1
  return 0
end

function response(status, headers, body)
  last = now()
  answered = answered + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if tally_header then
    local value = headers[tally_header] or "-"
    tallies[value] = (tallies[value] or 0) + 1
  end
  if status == 202 then
    local token = body:match('"order"%s*:%s*"([%x%-]+)"')
    if token then
      table.insert(tokens, token)
    end
  elseif status >= 400 then
    local code = body:match('"error"%s*:%s*"([%w_]+)"') or "-"
    local kind = key .. " " .. code
    errors[kind] = (errors[kind] or 0) + 1
  end
  if mode == "once" and answered >= quota then
    if done_file then
      local f = io.open(done_file, "a")
      f:write(id, "\n")
      f:close()
    end
    wrk.thread:stop()
  end
end

-- A minimal JSON encoder: tables with string keys, strings and finite numbers (else null).
local function json(value)
  local kind = type(value)
  if kind == "table" then
    local parts = {}
    for k, v in pairs(value) do
      table.insert(parts, json(tostring(k)) .. ":" .. json(v))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif kind == "number" and value == value and value ~= math.huge and value ~= -math.huge then
    return string.format("%.17g", value)
  end
  return "null"
end

function done(summary, latency, _)
  local per_thread = {}
  for i, thread in ipairs(threads) do
    per_thread[tostring(i)] = {
      statuses = thread:get("statuses"),
      errors = thread:get("errors"),
      tallies = thread:get("tallies"),
      tokens = table.concat(thread:get("tokens"), " "),
      answered = thread:get("answered"),
      first = thread:get("first"),
      last = thread:get("last"),
    }
  end
  local percentiles = {}
  for _, p in ipairs({ 50, 90, 95, 99, 99.9 }) do
    percentiles[tostring(p)] = latency:percentile(p)
  end
  io.write("BENCH-JSON ", json({
    duration_us = summary.duration,
    requests = summary.requests,
    bytes = summary.bytes,
    errors = summary.errors,
    latency_us = {
      min = latency.min,
      max = latency.max,
      mean = latency.mean,
      percentiles = percentiles,
    },
    threads = per_thread,
  }), "\n")
end
