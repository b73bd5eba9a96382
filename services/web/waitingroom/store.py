"""The waiting room's state in Redis, changed only by Lua scripts (one at a time, so atomic).

Keys of sale ID, beside the gate's (orders/gate.py) and with its hash tag, so one script can
read the gate's stock and the room together, on Redis Cluster too:
  qbuy:{s:ID}:room      hash: opens, draw, ends (epoch ms), rate (buyers/s), margin, ttl (ms),
                        head (places admitted so far), carry (ms after draw up to which the
                        rate's admissions are spent), seq (arrivals after the draw), built (ms)
  qbuy:{s:ID}:queue     sorted set: buyer -> place key. Joining before the draw: a random number
                        in [0, 1) drawn from the OS's CSPRNG once per place, so the order at the
                        draw is a uniformly random permutation of everyone in the room, however
                        early or often they came. After the draw: 1 + arrival number.
  qbuy:{s:ID}:admitted  sorted set: buyer -> the pass's deadline (epoch ms); a buy removes it.

Admission is computed when anyone looks (a visit): from the draw on, RATE places a second, in
queue order, while fewer than stock left + margin passes are unspent and unexpired. New places
after the draw only ever go to the end, so the places already admitted never move.
"""

import math
import secrets
from dataclasses import dataclass

from django.conf import settings

from orders import gate

VISIT = """
local room, queue, admitted, sale, buyers = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local buyer, join, draw = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', room) == 0 or redis.call('EXISTS', sale) == 0 then
  return {'missing'}
end
local r = redis.call('HMGET', room, 'opens', 'draw', 'ends', 'rate', 'margin', 'ttl', 'head',
  'carry', 'head_key')
local head_key = r[9] or '-1'
local opens, drawn, ends, rate = tonumber(r[1]), tonumber(r[2]), tonumber(r[3]), tonumber(r[4])
local margin, ttl, head, carry = tonumber(r[5]), tonumber(r[6]), tonumber(r[7]), tonumber(r[8])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stock = tonumber(redis.call('HGET', sale, 'stock'))
-- Expired passes give their slot back.
redis.call('ZREMRANGEBYSCORE', admitted, '-inf', now)
if now >= drawn and now < ends then
  local elapsed = now - drawn
  local since = math.max(carry, 0)
  local due = math.floor((elapsed - since) * rate / 1000)
  local n = math.min(due, stock + margin - redis.call('ZCARD', admitted))
  if stock <= 0 then n = 0 end
  -- A place whose buyer has bought meanwhile (with a pass from before the room was rebuilt)
  -- is passed over: an admission would hold a slot nobody can use.
  local let, size = 0, redis.call('ZCARD', queue)
  while let < n and head < size do
    for _, who in ipairs(redis.call('ZRANGE', queue, head, head + n - let - 1)) do
      head = head + 1
      if redis.call('HEXISTS', buyers, who) == 0 then
        redis.call('ZADD', admitted, now + ttl, who)
        let = let + 1
      end
    end
  end
  if let > 0 then redis.call('PEXPIREAT', admitted, ends + 3600000) end
  if head > tonumber(r[7]) then
    -- The key of the last place let in: a buyer who knows her own key knows she is in from
    -- the public answer alone, without asking for her place (one request per buyer).
    head_key = redis.call('ZRANGE', queue, head - 1, head - 1, 'WITHSCORES')[2]
    redis.call('HSET', room, 'head_key', head_key)
  end
  -- What the stock or an empty queue held back is not saved up for later: admitting it all at
  -- once when stock comes back is the burst the room is there to prevent.
  if let < due then carry = elapsed elseif let > 0 then carry = since + let * 1000 / rate end
  redis.call('HSET', room, 'head', head, 'carry', carry)
end
-- A buyer who bought has had her turn: back in a rebuilt room, she takes no place.
local bought = buyer ~= '' and redis.call('HEXISTS', buyers, buyer) == 1
local joined = 0
if buyer ~= '' and join == '1' and now >= opens and now < ends and not bought
    and not (now >= drawn and stock <= 0)
    and redis.call('ZSCORE', queue, buyer) == false then
  local key = draw
  if now >= drawn then key = 1 + redis.call('HINCRBY', room, 'seq', 1) end
  redis.call('ZADD', queue, key, buyer)
  redis.call('PEXPIREAT', queue, ends + 3600000)
  joined = 1
end
local waiting = redis.call('ZCARD', queue) - head
local state, rank, deadline, key = 'out', false, false, false
if buyer ~= '' then
  rank = redis.call('ZRANK', queue, buyer)
  deadline = redis.call('ZSCORE', admitted, buyer)
  key = redis.call('ZSCORE', queue, buyer)
end
-- Sold out is told to the admitted too: a pass is no use without stock.
if now >= ends then state = 'ended'
elseif bought then state = 'passed'
elseif now >= drawn and stock <= 0 then state = 'sold_out'
elseif deadline then state = 'admitted'
elseif rank and rank < head then state = 'passed'
elseif now < opens then state = 'not_open'
elseif rank and now < drawn then state = 'drawing'
elseif rank then state = 'waiting'
end
if not rank then rank = -1 end
return {state, rank, head, waiting, stock, tostring(deadline or -1), drawn, rate, opens, ends,
  joined, now, head_key, key or '-1'}
"""

# A room that is not in Redis: a new one, or one Redis lost. Written only if still missing.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local starts, redraw = tonumber(ARGV[2]), tonumber(ARGV[7])
-- Built after the start, the room lost its places (or never had any): those who come back
-- within the redraw window are put in a random order again, then admission resumes.
local drawn = starts
if now >= starts then drawn = now + redraw end
redis.call('HSET', KEYS[1], 'opens', ARGV[1], 'draw', drawn, 'ends', ARGV[3], 'rate', ARGV[4],
  'margin', ARGV[5], 'ttl', ARGV[6], 'head', 0, 'carry', 0, 'seq', 0, 'built', now)
-- Kept an hour past the end, counted from now for a sale that ended longer ago: an expiry in
-- the past would delete the room as it is written, and every visit would find it missing.
redis.call('PEXPIREAT', KEYS[1], math.max(tonumber(ARGV[3]), now) + 3600000)
return 1
"""

# An admin changed the sale: its rate, margin, pass time and end at once; its opening and draw
# only while nobody has been drawn yet.
SYNC = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'ends', ARGV[3], 'rate', ARGV[4], 'margin', ARGV[5], 'ttl', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], math.max(tonumber(ARGV[3]), now) + 3600000)
if now < tonumber(redis.call('HGET', KEYS[1], 'draw')) and tonumber(ARGV[2]) > now then
  redis.call('HSET', KEYS[1], 'opens', ARGV[1], 'draw', ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class Visit:
    state: str  # out, not_open, drawing, waiting, admitted, passed, sold_out, ended; missing
    rank: int = -1  # 0-based place in the queue; -1: not in it
    head: int = 0  # places admitted so far
    waiting: int = 0  # places not admitted yet
    stock: int = 0  # the gate's stock left to reserve
    deadline_ms: int = -1  # the pass's, when admitted
    draw_ms: int = 0
    rate: int = 0
    opens_ms: int = 0
    ends_ms: int = 0
    joined: bool = False
    now_ms: int = 0  # Redis's clock, the room's only one
    head_key: float = -1  # the place key of the last place let in; -1: none yet
    key: float = -1  # the buyer's place key; -1: no place


def keys(sale_id: int) -> list[str]:
    room, admitted = gate.room_keys(sale_id)
    return [room, f"qbuy:{{s:{sale_id}}}:queue", admitted]


def _script(source):
    return gate.redis().register_script(source)


def place_key() -> str:
    """A random number in [0, 1) from the OS's CSPRNG, 53 bits: exact as a Redis score."""
    return repr(secrets.randbits(53) / (1 << 53))


def visit(sale_id: int, buyer_id: int | None = None, *, join: bool = False) -> Visit:
    """Advance admission to now; with ``join``, take a place for the buyer (once: a second
    join keeps the first place). 'missing' when the room or the gate is not in Redis."""
    args = ["" if buyer_id is None else buyer_id, "1" if join else "0", place_key()]
    raw = _script(VISIT)(keys=[*keys(sale_id), *gate.keys(sale_id)[:2]], args=args)
    state = raw[0].decode()
    if state == "missing":
        return Visit("missing")
    return Visit(
        state,
        *(int(v) for v in raw[1:5]),
        int(float(raw[5])),
        *(int(v) for v in raw[6:10]),
        bool(int(raw[10])),
        int(raw[11]),
        float(raw[12]),
        float(raw[13]),
    )


def _args(sale) -> list:
    starts = int(sale.starts_at.timestamp() * 1000)
    rate = sale.admission_rate or settings.WAITING_ROOM_RATE
    return [
        starts - settings.WAITING_ROOM_OPENS * 1000,
        starts,
        int(sale.ends_at.timestamp() * 1000),
        rate,
        max(1, math.ceil(sale.stock * settings.WAITING_ROOM_MARGIN)),
        settings.WAITING_ROOM_PASS_TTL * 1000,
        settings.WAITING_ROOM_REDRAW * 1000,
    ]


def create(sale) -> bool:
    """The sale's room, unless Redis has it already."""
    return bool(_script(CREATE)(keys=keys(sale.pk)[:1], args=_args(sale)))


def sync(sale) -> bool:
    """Carry an admin's change of a sale into its room, if Redis has it."""
    return bool(_script(SYNC)(keys=keys(sale.pk)[:1], args=_args(sale)[:6]))


def forget(sale_id: int) -> None:
    """Drop the room (switched off): passes signed for it are worth nothing from now on."""
    gate.redis().delete(*keys(sale_id))
