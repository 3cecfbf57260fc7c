-- The AdvanceConnect ledger: one change to one prepaid account, atomically and once per ref.
--
-- KEYS[1]  acct:{account}          hash: balance, held, deposits, credits, charges, refunds,
--                                  status ('open' unless 'closed'), all integer cents
-- KEYS[2]  acct:{account}:entries  list: the account's immutable entries (JSON), oldest first
-- KEYS[3]  acct:{account}:refs     hash: each ref applied -> the last entry it made (or a void
--                                  marker), and 'hold:{hold_id}' -> the void marker of a voided hold
-- KEYS[4]  acct:{account}:holds    hash: each open hold id -> the cents it reserves
-- ARGV[1]  the change, a JSON object (billing_hooks.ledger.LedgerChange):
--            kind               deposit | autopay | credit | hold | release | charge | refund | close
--            amount_cents       integer, 0 <= amount <= 10^12 (release and close: 0, not used)
--            ref                the change's reference, not empty: a retry with it changes nothing
--            at                 when, in Unix seconds (kept in the entries)
--            hold_id            the hold a hold, release or charge is about ('' for none);
--                               required by hold and release
--            meta               an object, kept in each entry the change makes
--            void_missing_hold  true: a charge against a hold that is missing voids it (below)
-- Returns {'ok', entry}: the last entry the change made (JSON), or a void marker;
--         {'dup', entry}: the ref was applied before, its entry (nothing written);
--         {'err', reason, detail}: refused, nothing written. Reasons: invalid, closed,
--         duplicate_hold, insufficient_funds, unknown_hold, exceeds_hold, holds_outstanding,
--         unknown_kind, broken_invariant (detail: which one).
--
-- The rules. Entries are made step by step, each with the running balance and held after it:
--   deposit, autopay, credit: balance += amount          refund: balance -= amount
--   hold: held += amount (a new hold id)                  release: held -= the hold, which goes
--   charge: balance -= amount; with a hold_id, against that hold: held -= the hold, which goes,
--           and what the charge leaves of it is a 'release' entry of the same ref
--   close: refunds the whole balance (a 'refund' entry) and marks the account closed; refused
--          while holds are out. A closed account accepts nothing but the settling of holds.
-- A charge against a missing hold with void_missing_hold charges nothing and voids the hold id:
-- a hold placed after the settlement (a racing connect) then returns the void marker (seq 0,
-- amount 0, meta.void) instead of reserving money no settlement would free.
--
-- The invariants, checked on the account before the change and on what it would write (a
-- change to an account that breaks one, only ever possible if it was edited by hand, is refused
-- with 'broken_invariant' and the invariant's name):
--   totals     balance = deposits + credits - charges - refunds (autopay counts as a deposit)
--   entries    balance and held are the last entry's (so the entries replay to the account)
--   holds      held = the sum of the open holds, and no hold is negative
--   available  held >= 0 and available = balance - held >= 0
--   once       a ref is applied once: its entries are made by one change (a retry is 'dup')

local acct, entries, refs, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local MAX = 1000000000000

local function refuse(reason, detail) return {'err', reason, detail or ''} end
local function whole(n) return type(n) == 'number' and n >= 0 and n <= MAX and n == math.floor(n) end

local parsed, op = pcall(cjson.decode, ARGV[1])
if not parsed or type(op) ~= 'table' then return refuse('invalid', 'the change is not an object') end
local kind, amount, ref, at = op.kind, op.amount_cents, op.ref, op.at
local hold_id, meta = op.hold_id or '', op.meta or {}
local void = op.void_missing_hold == true
if type(kind) ~= 'string' or type(ref) ~= 'string' or ref == '' then
  return refuse('invalid', 'a change needs a kind and a ref')
end
if not whole(amount) then return refuse('invalid', 'amount_cents: an integer from 0 to 10^12') end
if type(at) ~= 'number' or type(hold_id) ~= 'string' or type(meta) ~= 'table' then
  return refuse('invalid', 'at: a number, hold_id: a string, meta: an object')
end
if (kind == 'hold' or kind == 'release') and hold_id == '' then
  return refuse('invalid', kind .. ' needs a hold_id')
end

-- once: a ref already applied returns what it made, whatever happened since.
local prior = redis.call('HGET', refs, ref)
if prior then return {'dup', prior} end

local a = redis.call('HMGET', acct, 'balance', 'held', 'deposits', 'credits', 'charges', 'refunds', 'status')
local bal, held = tonumber(a[1]) or 0, tonumber(a[2]) or 0
local dep, cred, chg, rfd = tonumber(a[3]) or 0, tonumber(a[4]) or 0, tonumber(a[5]) or 0, tonumber(a[6]) or 0
local status = a[7] or 'open'

-- The sum of the open holds, and whether one is negative (holds are few: one per live call).
local held_sum, negative = 0, false
local open = redis.call('HVALS', holds)
for i = 1, #open do
  local h = tonumber(open[i]) or -1
  if h < 0 then negative = true end
  held_sum = held_sum + h
end

local function broken(b, h, sum, neg)
  if b ~= dep + cred - chg - rfd then return 'totals' end
  if neg or h ~= sum then return 'holds' end
  if h < 0 or b - h < 0 then return 'available' end
  return nil
end

local before = broken(bal, held, held_sum, negative)
if not before then
  local last = redis.call('LINDEX', entries, -1)
  local lb, lh = 0, 0
  if last then
    local e = cjson.decode(last)
    lb, lh = tonumber(e.balance_cents), tonumber(e.held_cents)
  end
  if lb ~= bal or lh ~= held then before = 'entries' end
end
if before then return refuse('broken_invariant', before) end

if status == 'closed' and kind ~= 'release' and not (kind == 'charge' and hold_id ~= '') then
  return refuse('closed')
end

local seq = redis.call('LLEN', entries)
local made = {}
local function entry(k, amt)
  seq = seq + 1
  table.insert(made, cjson.encode({seq = seq, kind = k, amount_cents = amt, balance_cents = bal,
    held_cents = held, ref = ref, at = at, hold_id = hold_id, meta = meta}))
end
local hold_set, hold_gone = nil, false  -- the hold this change places, or whether it frees one

if kind == 'deposit' or kind == 'autopay' then
  bal = bal + amount; dep = dep + amount; entry(kind, amount)
elseif kind == 'credit' then
  bal = bal + amount; cred = cred + amount; entry(kind, amount)
elseif kind == 'hold' then
  if redis.call('HEXISTS', holds, hold_id) == 1 then return refuse('duplicate_hold') end
  if bal - held < amount then return refuse('insufficient_funds') end
  held = held + amount; hold_set = amount; entry(kind, amount)
elseif kind == 'release' then
  local h = tonumber(redis.call('HGET', holds, hold_id))
  if not h then return refuse('unknown_hold') end
  held = held - h; hold_gone = true; entry(kind, h)
elseif kind == 'charge' then
  if hold_id ~= '' then
    local h = tonumber(redis.call('HGET', holds, hold_id))
    if not h and void then
      meta['void'] = true
      local marker = cjson.encode({seq = 0, kind = 'charge', amount_cents = 0, balance_cents = bal,
        held_cents = held, ref = ref, at = at, hold_id = hold_id, meta = meta})
      redis.call('HSETNX', refs, 'hold:' .. hold_id, marker)
      redis.call('HSET', refs, ref, marker)
      return {'ok', marker}
    end
    if not h then return refuse('unknown_hold') end
    if amount > h then return refuse('exceeds_hold') end
    hold_gone = true
    if amount > 0 or h == 0 then
      bal = bal - amount; held = held - amount; chg = chg + amount; entry('charge', amount)
    end
    if h - amount > 0 then held = held - (h - amount); entry('release', h - amount) end
  else
    if bal - held < amount then return refuse('insufficient_funds') end
    bal = bal - amount; chg = chg + amount; entry(kind, amount)
  end
elseif kind == 'refund' then
  if bal - held < amount then return refuse('insufficient_funds') end
  bal = bal - amount; rfd = rfd + amount; entry(kind, amount)
elseif kind == 'close' then
  if held > 0 or #open > 0 then return refuse('holds_outstanding') end
  local all = bal
  bal = 0; rfd = rfd + all; status = 'closed'; entry('refund', all)
else
  return refuse('unknown_kind')
end

-- What the change would write must keep every invariant (else nothing is written).
local after_sum = held_sum + (hold_set or 0)
if hold_gone then after_sum = after_sum - tonumber(redis.call('HGET', holds, hold_id)) end
local after = broken(bal, held, after_sum, false)
if after then return refuse('broken_invariant', after) end

for i = 1, #made do redis.call('RPUSH', entries, made[i]) end
if hold_set then redis.call('HSET', holds, hold_id, hold_set) end
if hold_gone then redis.call('HDEL', holds, hold_id) end
redis.call('HSET', acct, 'balance', bal, 'held', held, 'deposits', dep, 'credits', cred,
           'charges', chg, 'refunds', rfd, 'status', status)
local last = made[#made]
redis.call('HSET', refs, ref, last)
return {'ok', last}
