-- Credits: the wallet of every account, metering, holds and expiry.
--
-- Model
--   credit_grants   lots of credits with `remaining` and an optional expiry. Consumption
--                   draws them down: soonest expiry first (never-expiring last), then
--                   promotional before paid, then oldest. A clawback that finds too few
--                   credits leaves a debt lot (source 'clawback', remaining < 0) that new
--                   grants repay first.
--   credit_balances one row per account: balance = sum of ledger deltas = sum of the
--                   remaining of unexpired lots; held = credits reserved by open holds;
--                   available = balance - held.
--   credit_ledger   every balance change, append-only, with the balance after it.
--   usage_events    every consumption, keyed for idempotency.
--   credit_holds    reservations for long jobs, captured or released later.
--
-- Concurrency
--   Every change to an account's credits first takes its credit_balances row lock
--   (a conditional UPDATE ... WHERE balance - held >= cost, or SELECT ... FOR UPDATE),
--   so draw-downs of the same wallet are serialized and a wallet never overdraws.
--   Lock order is always wallet, then hold. The work before the lock (validation,
--   permission, idempotency claim, rate limit, quota) keeps the lock short.
--
-- Expiry
--   Expired lots stop counting the moment they expire: the first change to a wallet
--   whose next_expiry_at has passed expires them inline, and
--   private.expire_credit_grants() sweeps every wallet (pg_cron). A hold never keeps
--   expired credits: expiry shrinks the newest open holds so held <= balance.

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('low_balance_threshold', '20', 'When available credits fall below this number the account is signalled once (until it rises again).'),
  ('signup_bonus_expires_after', 'null', 'Lifetime of the signup bonus as an interval string ("30 days"); null: it never expires.'),
  ('max_hold_seconds', '86400', 'Longest ttl_seconds a hold may ask for.')
on conflict (key) do nothing;

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------
create table public.credit_balances (
  account_id uuid primary key references public.accounts (id) on delete cascade,
  balance bigint not null default 0,
  held bigint not null default 0 check (held >= 0),
  available bigint generated always as (balance - held) stored,
  next_expiry_at timestamptz,
  low_balance_since timestamptz,
  updated_at timestamptz not null default now()
);
comment on table public.credit_balances is
  'The wallet of an account: balance (sum of the ledger), held (reserved by open holds) and available = balance - held. Changed only by the credit functions.';
comment on column public.credit_balances.balance is 'Sum of all ledger deltas; equals the remaining credits of unexpired grants. Negative only after a clawback (a debt).';
comment on column public.credit_balances.held is 'Credits reserved by open holds; never more than the balance.';
comment on column public.credit_balances.available is 'What can be spent now: balance - held.';
comment on column public.credit_balances.next_expiry_at is 'Soonest expiry among grants with credits left (may be early, never late): when it has passed, the next change expires lots first.';
comment on column public.credit_balances.low_balance_since is 'Set when available fell below the low_balance_threshold setting, cleared when it rises above it again.';

create table public.credit_grants (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  source text not null check (source in ('signup_bonus', 'referral', 'purchase', 'subscription', 'admin', 'promo', 'clawback')),
  amount bigint not null,
  remaining bigint not null,
  expires_at timestamptz,
  paid boolean generated always as (source in ('purchase', 'subscription')) stored,
  payment_id uuid,
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  seq bigint generated always as identity,
  constraint credit_grants_remaining_check check (
    (source <> 'clawback' and amount > 0 and remaining between 0 and amount)
    or (source = 'clawback' and amount <= 0 and remaining between amount and 0)
  ),
  constraint credit_grants_idempotency_key unique (account_id, idempotency_key)
);
comment on table public.credit_grants is
  'Lots of credits with what is left of them. Source clawback marks a debt lot (negative remaining) that new grants repay first.';
comment on column public.credit_grants.paid is 'Paid credits (purchase, subscription) are drawn after promotional ones when expiries tie.';
comment on column public.credit_grants.seq is 'Insertion order: breaks ties between lots created at the same time.';
comment on column public.credit_grants.payment_id is 'The payment that bought these credits, when there is one.';
create index credit_grants_drawdown_idx on public.credit_grants (account_id, expires_at, paid, created_at, seq) where remaining > 0;
create index credit_grants_expiry_idx on public.credit_grants (expires_at) where remaining > 0 and expires_at is not null;
create unique index credit_grants_one_debt_idx on public.credit_grants (account_id) where source = 'clawback' and remaining < 0;
create index credit_grants_payment_id_idx on public.credit_grants (payment_id) where payment_id is not null;

create table public.usage_events (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  action text not null,
  quantity integer not null check (quantity > 0),
  credits_charged bigint not null check (credits_charged >= 0),
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  metadata jsonb not null default '{}'::jsonb,
  hold_id uuid,
  api_key_id uuid,
  created_at timestamptz not null default now()
);
comment on table public.usage_events is
  'Every metered consumption (generations, API calls, AI tokens): what, how much, what it cost, and free-form metadata such as the model, token counts or an output URL.';
comment on column public.usage_events.idempotency_key is 'A retried call with the same key returns the first result instead of charging again.';
comment on column public.usage_events.action is
  'The billable action''s key. Not a foreign key on purpose: every consumption would take a KEY SHARE lock on the one catalog row of its action, a hot row for all accounts; consume_credits checks the action instead.';
create unique index usage_events_idempotency_key on public.usage_events (account_id, idempotency_key) where idempotency_key is not null;
create index usage_events_account_created_idx on public.usage_events (account_id, created_at desc);
create index usage_events_user_id_idx on public.usage_events (user_id) where user_id is not null;

create table public.credit_holds (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  action text not null,
  quantity integer not null check (quantity > 0),
  credits_per_unit bigint not null check (credits_per_unit >= 0),
  unit_size integer not null check (unit_size > 0),
  amount bigint not null check (amount >= 0),
  status text not null default 'held' check (status in ('held', 'captured', 'released', 'expired')),
  expires_at timestamptz not null,
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  usage_event_id uuid references public.usage_events (id) on delete set null,
  credits_charged bigint,
  quota_period_start timestamptz,
  quota_keys text[] not null default '{}',
  created_at timestamptz not null default now(),
  seq bigint generated always as identity,
  settled_at timestamptz,
  constraint credit_holds_idempotency_key unique (account_id, idempotency_key)
);
comment on table public.credit_holds is
  'Reservations for long jobs: reserve_credits holds the estimated cost, capture_credits charges at most that and releases the rest, release_credits or expiry gives it all back.';
comment on column public.credit_holds.amount is 'Credits reserved; shrinks only if the credits behind it expire.';
comment on column public.credit_holds.quota_keys is
  'The plan quotas (and their billing period, quota_period_start) this hold counted its units against when reserved; unused units go back when it settles.';
comment on column public.credit_holds.credits_per_unit is 'The action''s price when reserved: capture charges at this price.';
create index credit_holds_account_idx on public.credit_holds (account_id, created_at desc);
create index credit_holds_open_expiry_idx on public.credit_holds (expires_at) where status = 'held';
create index credit_holds_user_id_idx on public.credit_holds (user_id) where user_id is not null;
create index credit_holds_usage_event_id_idx on public.credit_holds (usage_event_id);

create table public.credit_ledger (
  id bigint generated always as identity primary key,
  account_id uuid not null references public.accounts (id) on delete cascade,
  delta bigint not null check (delta <> 0),
  balance_after bigint not null,
  available_after bigint not null,
  reason text not null check (reason in (
    'signup_bonus', 'referral', 'purchase', 'subscription', 'admin', 'promo',
    'consume', 'capture', 'expire', 'clawback', 'admin_adjust')),
  grant_id uuid,
  usage_event_id uuid,
  hold_id uuid,
  payment_id uuid,
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  actor_user_id uuid,
  actor_role text not null default 'system',
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
comment on table public.credit_ledger is
  'Every change of a wallet''s balance, in order, with the balance after it. Append-only for every role.';
comment on column public.credit_ledger.reason is 'A grant''s source, or consume, capture, expire, clawback, admin_adjust.';
comment on column public.credit_ledger.grant_id is
  'The lot this entry concerns (grants, expiry, clawbacks). The links grant_id, usage_event_id and hold_id are written only by the credit functions, in the same transaction as what they point at, and are not foreign keys: a foreign-key check on every entry would lock the referenced rows on the hot path.';
comment on column public.credit_ledger.actor_role is 'Who caused the change: authenticated (a user), service_role or system (a server or job).';
create unique index credit_ledger_idempotency_key on public.credit_ledger (account_id, idempotency_key) where idempotency_key is not null;
create index credit_ledger_account_page_idx on public.credit_ledger (account_id, id desc);
create index credit_ledger_grant_id_idx on public.credit_ledger (grant_id) where grant_id is not null;
create index credit_ledger_usage_event_id_idx on public.credit_ledger (usage_event_id) where usage_event_id is not null;
create index credit_ledger_hold_id_idx on public.credit_ledger (hold_id) where hold_id is not null;
create index credit_ledger_payment_id_idx on public.credit_ledger (payment_id) where payment_id is not null;

create table private.usage_counters (
  account_id uuid not null references public.accounts (id) on delete cascade,
  period_start timestamptz not null,
  key text not null,
  used bigint not null check (used >= 0),
  primary key (account_id, period_start, key)
);
comment on table private.usage_counters is
  'Units used per account, billing period and quota key (an action, or category:<name>), for plan quotas.';
alter table private.usage_counters enable row level security;
create policy "Clients never access usage counters" on private.usage_counters
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- Append-only ledger and usage events
-- ---------------------------------------------------------------------------
create or replace function private.refuse_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Foreign keys maintain these tables when what they point at goes away (fired by the
  -- foreign key: trigger depth > 1): deleting an account removes its history, and
  -- deleting a user, hold or grant nulls the link columns named as trigger arguments.
  if pg_catalog.pg_trigger_depth() > 1 then
    if tg_op = 'DELETE' then
      return old;
    end if;
    if tg_op = 'UPDATE' and (pg_catalog.to_jsonb(new) - tg_argv) = (pg_catalog.to_jsonb(old) - tg_argv) then
      return new;
    end if;
  end if;
  raise exception using errcode = '42501', message = 'permission denied',
    detail = pg_catalog.format('%I.%I is append-only', tg_table_schema, tg_table_name);
end
$$;
comment on function private.refuse_change() is
  'Trigger: refuses UPDATE, DELETE and TRUNCATE on append-only tables, for every role. Only foreign-key maintenance passes: cascaded deletes, and cascaded set-null of the link columns given as trigger arguments.';

create trigger credit_ledger_append_only before update or delete on public.credit_ledger
  for each row execute function private.refuse_change();
create trigger credit_ledger_no_truncate before truncate on public.credit_ledger
  for each statement execute function private.refuse_change();
create trigger usage_events_append_only before update or delete on public.usage_events
  for each row execute function private.refuse_change('user_id', 'api_key_id');
create trigger usage_events_no_truncate before truncate on public.usage_events
  for each statement execute function private.refuse_change();

-- ---------------------------------------------------------------------------
-- Internals: who is calling, what things cost
-- ---------------------------------------------------------------------------
create or replace function private.is_trusted_caller()
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
  -- The API roles a client can be; anything else is a server: service_role, or a
  -- function connected as postgres (the usage function after checking an API key).
  return pg_catalog.current_setting('role') not in ('anon', 'authenticated');
end
$$;
comment on function private.is_trusted_caller() is
  'True for servers (service_role, or a direct database connection), false for anon and signed-in users, whose permissions are checked.';

create or replace function private.authorize_wallet(account_id uuid, permission text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if private.is_trusted_caller() then
    if not exists (select from public.credit_balances w where w.account_id = authorize_wallet.account_id) then
      raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such account';
    end if;
  else
    perform private.require_user();
    perform private.require_permission(authorize_wallet.account_id, authorize_wallet.permission);
  end if;
end
$$;
comment on function private.authorize_wallet(uuid, text) is
  'Raises unless the caller may act on the wallet: a user needs the permission in the account; a server needs the account to exist.';

create or replace function private.actor_role()
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return case when pg_catalog.current_setting('role') in ('anon', 'authenticated', 'service_role')
              then pg_catalog.current_setting('role') else 'system' end;
end
$$;
comment on function private.actor_role() is 'The role recorded as actor of a change: authenticated, service_role or system.';

create or replace function private.credit_cost(quantity bigint, credits bigint, unit_size integer)
returns bigint
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (quantity * credits + unit_size - 1) / unit_size;
end
$$;
comment on function private.credit_cost(bigint, bigint, integer) is 'ceil(quantity * credits / unit_size) in integer arithmetic.';

create or replace function private.find_action(action text)
returns public.billable_actions
language plpgsql
stable
set search_path = ''
as $$
declare
  found_action public.billable_actions;
begin
  select a.* into found_action from public.billable_actions a where a.key = find_action.action and a.active;
  if not found then
    raise exception using errcode = 'PT404', message = 'not_found', detail = pg_catalog.format('no active billable action %L', action);
  end if;
  return found_action;
end
$$;
comment on function private.find_action(text) is 'The active billable action with that key, or PT404 not_found.';

create or replace function private.check_usage_arguments(quantity integer, idempotency_key text, metadata jsonb)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if quantity is null or quantity < 1 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'quantity must be a positive integer';
  end if;
  if idempotency_key is not null and (length(idempotency_key) < 1 or length(idempotency_key) > 255) then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'idempotency_key must be 1 to 255 characters';
  end if;
  if metadata is null or jsonb_typeof(metadata) <> 'object' then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'metadata must be a JSON object';
  end if;
  if pg_catalog.octet_length(metadata::text) > 16384 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'metadata must be at most 16 kB';
  end if;
end
$$;
comment on function private.check_usage_arguments(integer, text, jsonb) is 'Validates the common arguments of consume_credits and reserve_credits (22023 invalid_input).';

-- ---------------------------------------------------------------------------
-- Internals: the wallet (callers hold the wallet row lock)
-- ---------------------------------------------------------------------------
create or replace function private.low_balance_threshold()
returns bigint
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce((private.setting('low_balance_threshold') #>> '{}')::bigint, 0);
end
$$;
comment on function private.low_balance_threshold() is 'The low_balance_threshold setting (0 when unset).';

create or replace function private.on_low_balance(account_id uuid, available bigint)
returns void
language sql
set search_path = ''
as $$
  -- Intentionally empty: the notifications migration replaces it to tell the account's
  -- billing managers. Called once each time available falls below the threshold.
$$;
comment on function private.on_low_balance(uuid, bigint) is
  'Seam: called in the transaction in which an account''s available credits fell below low_balance_threshold (once until they rise above it again).';

create or replace function private.write_ledger(
  wallet public.credit_balances,
  delta bigint,
  reason text,
  grant_id uuid default null,
  usage_event_id uuid default null,
  hold_id uuid default null,
  payment_id uuid default null,
  idempotency_key text default null,
  metadata jsonb default '{}'::jsonb
) returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.credit_ledger (account_id, delta, balance_after, available_after, reason, grant_id,
                                    usage_event_id, hold_id, payment_id, idempotency_key, actor_user_id, actor_role, metadata)
  values (wallet.account_id, delta, wallet.balance, wallet.available, reason, grant_id,
          usage_event_id, hold_id, payment_id, idempotency_key, auth.uid(), private.actor_role(), coalesce(metadata, '{}'::jsonb));
end
$$;
comment on function private.write_ledger(public.credit_balances, bigint, text, uuid, uuid, uuid, uuid, text, jsonb) is
  'Appends one ledger entry carrying the wallet''s balance and available after the change.';

create or replace function private.set_wallet(
  account_id uuid,
  balance_delta bigint,
  held_delta bigint default 0,
  guarded boolean default false
) returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  threshold bigint := private.low_balance_threshold();
  wallet public.credit_balances;
begin
  -- Guarded: only if available stays >= 0 and no lot is due to expire (else the caller
  -- takes the slow path through private.lock_wallet). The update is the row lock.
  update public.credit_balances w
     set balance = w.balance + balance_delta,
         held = w.held + held_delta,
         updated_at = at,
         low_balance_since = case when w.balance + balance_delta - w.held - held_delta < threshold
                                  then coalesce(w.low_balance_since, at) end
   where w.account_id = set_wallet.account_id
     and (not guarded or (w.balance + balance_delta - w.held - held_delta >= 0
                          and (w.next_expiry_at is null or w.next_expiry_at > at)))
  returning w.* into wallet;
  if wallet.available < threshold and wallet.available - (balance_delta - held_delta) >= threshold then
    perform private.on_low_balance(wallet.account_id, wallet.available);
  end if;
  return wallet;
end
$$;
comment on function private.set_wallet(uuid, bigint, bigint, boolean) is
  'Applies a change to a wallet and returns the new row (all nulls when a guarded change does not fit), signalling once when available falls below the low-balance threshold.';

create or replace function private.draw_down(account_id uuid, amount bigint)
returns void
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  taken bigint;
begin
  if amount <= 0 then
    return;
  end if;
  -- Nearly always the first lot in draw-down order covers the charge: take it from there.
  update public.credit_grants g set remaining = g.remaining - draw_down.amount
  where g.id = (select f.id from public.credit_grants f
                where f.account_id = draw_down.account_id and f.remaining > 0
                  and (f.expires_at is null or f.expires_at > at)
                order by f.expires_at, f.paid, f.created_at, f.seq
                limit 1)
    and g.remaining >= draw_down.amount;
  if found then
    return;
  end if;
  with lots as (
    select g.id, g.remaining,
           sum(g.remaining) over (order by g.expires_at, g.paid, g.created_at, g.seq) as upto
    from public.credit_grants g
    where g.account_id = draw_down.account_id
      and g.remaining > 0
      and (g.expires_at is null or g.expires_at > at)
  ), take as (
    select l.id, least(l.remaining, amount - (l.upto - l.remaining)) as n
    from lots l
    where l.upto - l.remaining < amount
  ), drawn as (
    update public.credit_grants g set remaining = g.remaining - take.n
    from take where g.id = take.id
    returning take.n
  )
  select coalesce(sum(n), 0) into taken from drawn;
  if taken <> amount then
    raise exception using errcode = 'XX000', message = 'credit invariant violated',
      detail = pg_catalog.format('account %s: drew %s of %s credits', account_id, taken, amount);
  end if;
end
$$;
comment on function private.draw_down(uuid, bigint) is
  'Takes credits from unexpired lots: soonest expiry first (never-expiring last), promotional before paid, oldest first. The wallet row must be locked.';

create or replace function private.shrink_holds(account_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
  excess bigint;
  h record;
  cut bigint;
begin
  select w.* into wallet from public.credit_balances w where w.account_id = shrink_holds.account_id;
  excess := wallet.held - greatest(wallet.balance, 0);
  if excess <= 0 then
    return;
  end if;
  for h in
    select c.id, c.amount from public.credit_holds c
    where c.account_id = shrink_holds.account_id and c.status = 'held' and c.amount > 0
    -- Holds past their time (not yet released by the sweeper) give way first, then the newest.
    order by (c.expires_at <= private.now()) desc, c.created_at desc, c.seq desc
    for update
  loop
    exit when excess <= 0;
    cut := least(h.amount, excess);
    update public.credit_holds set amount = amount - cut where id = h.id;
    excess := excess - cut;
  end loop;
  perform private.set_wallet(shrink_holds.account_id, 0, -(wallet.held - greatest(wallet.balance, 0) - excess));
end
$$;
comment on function private.shrink_holds(uuid) is
  'After credits left the wallet without a charge (expiry, clawback), shrinks open holds (lapsed ones first, then the newest) so that held never exceeds the balance.';

create or replace function private.expire_account_grants(account_id uuid)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  lot record;
  wallet public.credit_balances;
  expired integer := 0;
begin
  for lot in
    select g.id, g.remaining from public.credit_grants g
    where g.account_id = expire_account_grants.account_id and g.remaining > 0 and g.expires_at <= at
    order by g.expires_at, g.id
  loop
    update public.credit_grants set remaining = 0 where id = lot.id;
    wallet := private.set_wallet(expire_account_grants.account_id, -lot.remaining);
    perform private.write_ledger(wallet, -lot.remaining, 'expire', grant_id => lot.id);
    expired := expired + 1;
  end loop;
  update public.credit_balances w
     set next_expiry_at = (select min(g.expires_at) from public.credit_grants g
                           where g.account_id = w.account_id and g.remaining > 0 and g.expires_at is not null)
   where w.account_id = expire_account_grants.account_id;
  if expired > 0 then
    perform private.shrink_holds(expire_account_grants.account_id);
  end if;
  return expired;
end
$$;
comment on function private.expire_account_grants(uuid) is
  'Expires the lots of one wallet whose time has come (an expire ledger entry each) and refreshes next_expiry_at. The wallet row must be locked.';

create or replace function private.lock_wallet(account_id uuid)
returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
begin
  select w.* into wallet from public.credit_balances w where w.account_id = lock_wallet.account_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such account';
  end if;
  if wallet.next_expiry_at <= private.now() then
    perform private.expire_account_grants(lock_wallet.account_id);
    select w.* into wallet from public.credit_balances w where w.account_id = lock_wallet.account_id;
  end if;
  return wallet;
end
$$;
comment on function private.lock_wallet(uuid) is 'Locks a wallet, expires what is due, and returns it (PT404 when there is none).';

create or replace function private.insufficient_credits(required bigint, available bigint)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT402', message = 'insufficient_credits',
    detail = pg_catalog.jsonb_build_object('required', required, 'available', available)::text,
    hint = 'buy credits or wait for your plan to renew';
end
$$;
comment on function private.insufficient_credits(bigint, bigint) is 'Raises PT402 insufficient_credits with {required, available} as the detail.';

create or replace function private.debit(
  account_id uuid,
  amount bigint,
  reason text,
  usage_event_id uuid default null,
  hold_id uuid default null,
  release_held bigint default 0
) returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
begin
  -- The fast path: one conditional update checks the balance, takes the lock and charges.
  wallet := private.set_wallet(debit.account_id, -amount, -release_held, guarded => true);
  if wallet.account_id is null then
    wallet := private.lock_wallet(debit.account_id);
    if amount > 0 and wallet.available + release_held < amount then
      perform private.insufficient_credits(amount, wallet.available);
    end if;
    wallet := private.set_wallet(debit.account_id, -amount, -release_held);
  end if;
  perform private.draw_down(debit.account_id, amount);
  if amount > 0 then
    perform private.write_ledger(wallet, -amount, reason, usage_event_id => debit.usage_event_id, hold_id => debit.hold_id);
  end if;
  return wallet;
end
$$;
comment on function private.debit(uuid, bigint, text, uuid, uuid, bigint) is
  'Charges a wallet (PT402 insufficient_credits when available + release_held < amount), draws the lots down and writes the ledger.';

-- ---------------------------------------------------------------------------
-- Grants and clawbacks (called by billing, referrals, signup and staff)
-- ---------------------------------------------------------------------------
create or replace function private.grant_credits(
  account_id uuid,
  amount bigint,
  source text,
  expires_at timestamptz default null,
  idempotency_key text default null,
  payment_id uuid default null,
  metadata jsonb default '{}'::jsonb
) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  existing uuid;
  wallet public.credit_balances;
  debt public.credit_grants;
  repaid bigint := 0;
  grant_id uuid;
begin
  if amount is null or amount <= 0 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a grant must be a positive number of credits';
  end if;
  if source is null or source = 'clawback' then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('invalid grant source %L', source);
  end if;
  if expires_at is not null and expires_at <= private.now() then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a grant cannot expire in the past';
  end if;
  wallet := private.lock_wallet(grant_credits.account_id);
  if idempotency_key is not null then
    select g.id into existing from public.credit_grants g
    where g.account_id = grant_credits.account_id and g.idempotency_key = grant_credits.idempotency_key;
    if found then
      return existing;
    end if;
  end if;

  -- New credits repay a debt first.
  select g.* into debt from public.credit_grants g
  where g.account_id = grant_credits.account_id and g.source = 'clawback' and g.remaining < 0;
  if found then
    repaid := least(amount, -debt.remaining);
    update public.credit_grants set remaining = remaining + repaid where id = debt.id;
  end if;

  insert into public.credit_grants (account_id, source, amount, remaining, expires_at, payment_id, idempotency_key, metadata)
  values (grant_credits.account_id, source, amount, amount - repaid, expires_at, payment_id, idempotency_key, coalesce(metadata, '{}'::jsonb))
  returning id into grant_id;

  if expires_at is not null and amount > repaid then
    update public.credit_balances w set next_expiry_at = least(w.next_expiry_at, grant_credits.expires_at)
    where w.account_id = grant_credits.account_id;
  end if;
  wallet := private.set_wallet(grant_credits.account_id, amount);
  perform private.write_ledger(wallet, amount, source, grant_id => grant_id, payment_id => grant_credits.payment_id,
                               idempotency_key => grant_credits.idempotency_key, metadata => grant_credits.metadata);
  return grant_id;
end
$$;
comment on function private.grant_credits(uuid, bigint, text, timestamptz, text, uuid, jsonb) is
  'Adds a lot of credits (repaying any debt first) and writes the ledger. Idempotent by (account, idempotency_key): a repeat returns the first grant''s id.';

create or replace function private.clawback_credits(
  account_id uuid,
  amount bigint,
  reason text default 'clawback',
  idempotency_key text default null,
  from_grant uuid default null,
  payment_id uuid default null,
  metadata jsonb default '{}'::jsonb
) returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
  from_lot bigint := 0;
  from_others bigint;
  owed bigint;
  positive bigint;
begin
  if amount is null or amount <= 0 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a clawback must be a positive number of credits';
  end if;
  if reason not in ('clawback', 'admin_adjust') then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('invalid clawback reason %L', reason);
  end if;
  wallet := private.lock_wallet(clawback_credits.account_id);
  if idempotency_key is not null and exists (
    select from public.credit_ledger l
    where l.account_id = clawback_credits.account_id and l.idempotency_key = clawback_credits.idempotency_key
  ) then
    return wallet;
  end if;

  -- The credits being taken back come first from the lot they were granted in.
  if from_grant is not null then
    select least(g.remaining, clawback_credits.amount) into from_lot from public.credit_grants g
    where g.id = from_grant and g.account_id = clawback_credits.account_id and g.remaining > 0
      and (g.expires_at is null or g.expires_at > private.now());
    from_lot := coalesce(from_lot, 0);
    update public.credit_grants set remaining = remaining - from_lot where id = from_grant and from_lot > 0;
  end if;

  select coalesce(sum(g.remaining), 0) into positive from public.credit_grants g
  where g.account_id = clawback_credits.account_id and g.remaining > 0
    and (g.expires_at is null or g.expires_at > private.now());
  from_others := least(clawback_credits.amount - from_lot, positive);
  perform private.draw_down(clawback_credits.account_id, from_others);

  -- What could not be taken back is owed: a debt lot that new grants repay.
  owed := amount - from_lot - from_others;
  if owed > 0 then
    update public.credit_grants g set amount = g.amount - owed, remaining = g.remaining - owed
    where g.account_id = clawback_credits.account_id and g.source = 'clawback' and g.remaining < 0;
    if not found then
      insert into public.credit_grants (account_id, source, amount, remaining, payment_id, metadata)
      values (clawback_credits.account_id, 'clawback', -owed, -owed, payment_id, coalesce(metadata, '{}'::jsonb));
    end if;
  end if;

  wallet := private.set_wallet(clawback_credits.account_id, -amount);
  perform private.write_ledger(wallet, -amount, reason, grant_id => from_grant, payment_id => clawback_credits.payment_id,
                               idempotency_key => clawback_credits.idempotency_key, metadata => clawback_credits.metadata);
  perform private.shrink_holds(clawback_credits.account_id);
  select w.* into wallet from public.credit_balances w where w.account_id = clawback_credits.account_id;
  return wallet;
end
$$;
comment on function private.clawback_credits(uuid, bigint, text, text, uuid, uuid, jsonb) is
  'Takes credits back (refunds, disputes, staff corrections): first from the given lot, then in draw-down order, the rest as a debt. Open holds shrink so held <= balance. Idempotent by (account, idempotency_key).';

-- ---------------------------------------------------------------------------
-- Quotas
-- ---------------------------------------------------------------------------
create or replace function private.use_quota(
  account_id uuid,
  action public.billable_actions,
  quantity integer,
  limits jsonb,
  period_start timestamptz,
  period_end timestamptz,
  mode text default 'count'
) returns text[]
language plpgsql
set search_path = ''
as $$
declare
  quota_key text;
  cap bigint;
  used bigint;
  counted text[] := '{}';
begin
  if limits is null or jsonb_typeof(limits -> 'quotas') <> 'object' then
    return counted;
  end if;
  foreach quota_key in array array[action.key, 'category:' || action.category] loop
    cap := (limits -> 'quotas' ->> quota_key)::bigint;
    continue when cap is null;
    if mode = 'force' then
      insert into private.usage_counters as c (account_id, period_start, key, used)
      values (use_quota.account_id, use_quota.period_start, quota_key, quantity)
      on conflict on constraint usage_counters_pkey do update set used = c.used + excluded.used
      returning c.used into used;
    else
      used := null;
      if quantity <= cap then
        insert into private.usage_counters as c (account_id, period_start, key, used)
        values (use_quota.account_id, use_quota.period_start, quota_key, quantity)
        on conflict on constraint usage_counters_pkey do update set used = c.used + excluded.used
          where c.used + excluded.used <= cap
        returning c.used into used;
      end if;
    end if;
    if used is null then
      raise exception using errcode = 'PT429', message = 'quota_exceeded',
        detail = pg_catalog.jsonb_build_object('quota', quota_key, 'limit', cap, 'resets_at', period_end)::text,
        hint = pg_catalog.format('resets at %s', pg_catalog.to_char(period_end at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    end if;
    counted := counted || quota_key;
  end loop;
  return counted;
end
$$;
comment on function private.use_quota(uuid, public.billable_actions, integer, jsonb, timestamptz, timestamptz, text) is
  'Counts units against the plan''s quotas for the action and its category in this billing period, or raises PT429 quota_exceeded with the reset time in the hint; returns the quota keys it counted. mode: count (check and count, one statement), force (count, never refuse: work already done).';

create or replace function private.return_quota(hold public.credit_holds, units integer)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if units <= 0 or hold.quota_period_start is null or cardinality(hold.quota_keys) = 0 then
    return;
  end if;
  update private.usage_counters c set used = greatest(c.used - units, 0)
  where c.account_id = hold.account_id and c.period_start = hold.quota_period_start and c.key = any (hold.quota_keys);
end
$$;
comment on function private.return_quota(public.credit_holds, integer) is
  'Gives back quota units a hold counted when it was reserved and did not use (released, expired, captured for less).';

-- ---------------------------------------------------------------------------
-- consume_credits
-- ---------------------------------------------------------------------------
create or replace function private.replay_usage(account_id uuid, idempotency_key text, action text, quantity integer, metadata jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  ev public.usage_events;
  entry public.credit_ledger;
  wallet public.credit_balances;
begin
  select e.* into ev from public.usage_events e
  where e.account_id = replay_usage.account_id and e.idempotency_key = replay_usage.idempotency_key;
  if ev.action is distinct from replay_usage.action or ev.quantity is distinct from replay_usage.quantity
     or ev.metadata is distinct from replay_usage.metadata then
    raise exception using errcode = 'PT409', message = 'idempotency_conflict',
      detail = 'this idempotency_key was used with other parameters',
      hint = 'use a new idempotency_key for a different request';
  end if;
  select l.* into entry from public.credit_ledger l where l.usage_event_id = ev.id order by l.id limit 1;
  if not found then
    select w.* into wallet from public.credit_balances w where w.account_id = replay_usage.account_id;
    entry.balance_after := wallet.balance;
    entry.available_after := wallet.available;
  end if;
  return pg_catalog.jsonb_build_object('usage_event_id', ev.id, 'credits_charged', ev.credits_charged,
    'balance', entry.balance_after, 'available', entry.available_after, 'replayed', true);
end
$$;
comment on function private.replay_usage(uuid, text, text, integer, jsonb) is
  'The original result of an idempotent consumption, or PT409 idempotency_conflict when the parameters differ.';

create or replace function public.consume_credits(
  account_id uuid,
  action text,
  quantity integer default 1,
  idempotency_key text default null,
  metadata jsonb default '{}'::jsonb
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  act public.billable_actions;
  cost bigint;
  plan record;
  event_id uuid;
  wallet public.credit_balances;
begin
  perform private.check_usage_arguments(quantity, idempotency_key, metadata);
  act := private.find_action(action);
  perform private.authorize_wallet(consume_credits.account_id, 'credits.consume');
  cost := private.credit_cost(quantity, act.credits, act.unit_size);

  -- Claim the idempotency key first: a concurrent twin waits here, then replays.
  insert into public.usage_events (account_id, user_id, action, quantity, credits_charged, idempotency_key, metadata, api_key_id)
  values (consume_credits.account_id, auth.uid(), act.key, quantity, cost, idempotency_key, metadata,
          nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), '')::uuid)
  on conflict (account_id, idempotency_key) where idempotency_key is not null do nothing
  returning id into event_id;
  if event_id is null then
    return private.replay_usage(consume_credits.account_id, idempotency_key, act.key, quantity, metadata);
  end if;

  select * into plan from private.account_plan(consume_credits.account_id);
  perform private.rate_limit('consume_credits', consume_credits.account_id, plan.limits);
  perform private.use_quota(consume_credits.account_id, act, quantity, plan.limits, plan.period_start, plan.period_end);

  if cost > 0 then
    wallet := private.debit(consume_credits.account_id, cost, 'consume', usage_event_id => event_id);
  else
    select w.* into wallet from public.credit_balances w where w.account_id = consume_credits.account_id;
  end if;
  return pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', cost,
    'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.consume_credits(uuid, text, integer, text, jsonb) is
  'Charges ceil(quantity * credits / unit_size) credits for an action and records the usage, in one transaction: permission credits.consume, idempotency, rate limit, plan quota, balance check, draw-down, ledger. Returns {usage_event_id, credits_charged, balance, available, replayed}. Errors: PT402 insufficient_credits, PT429 rate_limited / quota_exceeded, PT409 idempotency_conflict, PT404 not_found, 22023 invalid_input, 42501.';

-- ---------------------------------------------------------------------------
-- Holds
-- ---------------------------------------------------------------------------
create or replace function public.reserve_credits(
  account_id uuid,
  action text,
  quantity integer default 1,
  idempotency_key text default null,
  ttl_seconds integer default 900
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  act public.billable_actions;
  cost bigint;
  plan record;
  hold public.credit_holds;
  wallet public.credit_balances;
  max_ttl integer := coalesce((private.setting('max_hold_seconds') #>> '{}')::integer, 86400);
begin
  perform private.check_usage_arguments(quantity, idempotency_key, '{}'::jsonb);
  if ttl_seconds is null or ttl_seconds < 1 or ttl_seconds > max_ttl then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('ttl_seconds must be between 1 and %s', max_ttl);
  end if;
  act := private.find_action(action);
  perform private.authorize_wallet(reserve_credits.account_id, 'credits.consume');
  cost := private.credit_cost(quantity, act.credits, act.unit_size);

  insert into public.credit_holds (account_id, user_id, action, quantity, credits_per_unit, unit_size, amount, expires_at, idempotency_key)
  values (reserve_credits.account_id, auth.uid(), act.key, quantity, act.credits, act.unit_size, cost,
          private.now() + pg_catalog.make_interval(secs => ttl_seconds), idempotency_key)
  on conflict on constraint credit_holds_idempotency_key do nothing
  returning * into hold;
  if hold.id is null then
    select h.* into hold from public.credit_holds h
    where h.account_id = reserve_credits.account_id and h.idempotency_key = reserve_credits.idempotency_key;
    if hold.action <> act.key or hold.quantity <> quantity then
      raise exception using errcode = 'PT409', message = 'idempotency_conflict',
        detail = 'this idempotency_key was used with other parameters', hint = 'use a new idempotency_key for a different request';
    end if;
    select w.* into wallet from public.credit_balances w where w.account_id = reserve_credits.account_id;
    return pg_catalog.jsonb_build_object('hold_id', hold.id, 'amount', hold.amount, 'expires_at', hold.expires_at,
      'available', wallet.available, 'replayed', true);
  end if;

  select * into plan from private.account_plan(reserve_credits.account_id);
  perform private.rate_limit('reserve_credits', reserve_credits.account_id, plan.limits);
  -- A hold counts its units against the quota now, so holds cannot overrun it together.
  update public.credit_holds h
     set quota_keys = private.use_quota(reserve_credits.account_id, act, reserve_credits.quantity, plan.limits,
                                        plan.period_start, plan.period_end),
         quota_period_start = plan.period_start
   where h.id = hold.id;

  wallet := private.set_wallet(reserve_credits.account_id, 0, cost, guarded => true);
  if wallet.account_id is null then
    wallet := private.lock_wallet(reserve_credits.account_id);
    if wallet.available < cost then
      perform private.insufficient_credits(cost, wallet.available);
    end if;
    wallet := private.set_wallet(reserve_credits.account_id, 0, cost);
  end if;
  return pg_catalog.jsonb_build_object('hold_id', hold.id, 'amount', cost, 'expires_at', hold.expires_at,
    'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.reserve_credits(uuid, text, integer, text, integer) is
  'Reserves the cost of quantity units of an action for ttl_seconds (default 900) without charging it. Returns {hold_id, amount, expires_at, available, replayed}. Same errors as consume_credits.';

create or replace function private.lock_hold(hold_id uuid)
returns public.credit_holds
language plpgsql
set search_path = ''
as $$
declare
  hold public.credit_holds;
begin
  -- Find the account without a lock, lock its wallet, then the hold: always wallet before hold.
  select h.* into hold from public.credit_holds h where h.id = lock_hold.hold_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such hold';
  end if;
  perform private.authorize_wallet(hold.account_id, 'credits.consume');
  perform private.lock_wallet(hold.account_id);
  select h.* into hold from public.credit_holds h where h.id = lock_hold.hold_id for update;
  return hold;
end
$$;
comment on function private.lock_hold(uuid) is 'Checks the caller may use the hold''s wallet, then locks the wallet and the hold (in that order) and returns the hold.';

create or replace function public.capture_credits(hold_id uuid, quantity integer default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  hold public.credit_holds;
  units integer;
  charge bigint;
  event_id uuid;
  plan record;
  wallet public.credit_balances;
begin
  if quantity is not null and quantity < 1 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'quantity must be a positive integer';
  end if;
  hold := private.lock_hold(hold_id);
  if hold.status = 'captured' then
    select w.* into wallet from public.credit_balances w where w.account_id = hold.account_id;
    return pg_catalog.jsonb_build_object('usage_event_id', hold.usage_event_id, 'credits_charged', hold.credits_charged,
      'released', 0, 'balance', wallet.balance, 'available', wallet.available, 'replayed', true);
  end if;
  if hold.status <> 'held' or hold.expires_at <= private.now() then
    raise exception using errcode = 'PT410', message = 'gone', detail = pg_catalog.format('the hold is %s',
      case when hold.status = 'held' then 'expired' else hold.status end);
  end if;

  units := coalesce(quantity, hold.quantity);
  charge := least(private.credit_cost(units, hold.credits_per_unit, hold.unit_size), hold.amount);

  insert into public.usage_events (account_id, user_id, action, quantity, credits_charged, metadata, hold_id, api_key_id)
  values (hold.account_id, auth.uid(), hold.action, units, charge, '{}'::jsonb, hold.id,
          nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), '')::uuid)
  returning id into event_id;
  -- The hold counted hold.quantity units when reserved: give back what was not used, and
  -- count (never refuse: the work is done) what was used beyond it.
  if units < hold.quantity then
    perform private.return_quota(hold, hold.quantity - units);
  elsif units > hold.quantity then
    select * into plan from private.account_plan(hold.account_id);
    perform private.use_quota(hold.account_id, (select a from public.billable_actions a where a.key = hold.action),
                              units - hold.quantity, plan.limits, plan.period_start, plan.period_end, 'force');
  end if;

  wallet := private.debit(hold.account_id, charge, 'capture', usage_event_id => event_id, hold_id => hold.id, release_held => hold.amount);
  update public.credit_holds h set status = 'captured', credits_charged = charge, usage_event_id = event_id, settled_at = private.now()
  where h.id = hold.id;
  return pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', charge,
    'released', hold.amount - charge, 'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.capture_credits(uuid, integer) is
  'Charges a hold: the cost of quantity units (default: the reserved quantity) at the reserved price, at most the held amount, and releases the rest. Returns {usage_event_id, credits_charged, released, balance, available, replayed}; capturing twice replays. PT410 gone for a released or expired hold.';

create or replace function private.settle_hold(hold public.credit_holds, status text)
returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
begin
  update public.credit_holds h set status = settle_hold.status, settled_at = private.now() where h.id = hold.id;
  perform private.return_quota(hold, hold.quantity);
  wallet := private.set_wallet(hold.account_id, 0, -hold.amount);
  return wallet;
end
$$;
comment on function private.settle_hold(public.credit_holds, text) is 'Gives a locked open hold back to the wallet (and its unused quota units back to the plan quota), marking it released or expired.';

create or replace function public.release_credits(hold_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  hold public.credit_holds;
  wallet public.credit_balances;
begin
  hold := private.lock_hold(hold_id);
  if hold.status = 'held' then
    wallet := private.settle_hold(hold, case when hold.expires_at <= private.now() then 'expired' else 'released' end);
    return pg_catalog.jsonb_build_object('released', hold.amount, 'available', wallet.available);
  end if;
  select w.* into wallet from public.credit_balances w where w.account_id = hold.account_id;
  return pg_catalog.jsonb_build_object('released', 0, 'available', wallet.available);
end
$$;
comment on function public.release_credits(uuid) is
  'Gives a hold''s credits back. Safe to retry: a hold already settled releases 0. Returns {released, available}.';

create or replace function private.release_expired_holds()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  candidate record;
  hold public.credit_holds;
  released integer := 0;
begin
  for candidate in
    select h.id, h.account_id from public.credit_holds h
    where h.status = 'held' and h.expires_at <= private.now()
    order by h.expires_at
    limit 10000
  loop
    -- Wallet first, then hold; skip what another sweeper or a capture holds right now.
    perform from public.credit_balances w where w.account_id = candidate.account_id for update skip locked;
    continue when not found;
    select h.* into hold from public.credit_holds h
    where h.id = candidate.id and h.status = 'held' and h.expires_at <= private.now()
    for update skip locked;
    continue when not found;
    perform private.settle_hold(hold, 'expired');
    released := released + 1;
  end loop;
  return released;
end
$$;
comment on function private.release_expired_holds() is
  'Releases every open hold past its expiry. Idempotent and safe to run concurrently (pg_cron); returns how many it released.';

create or replace function private.expire_credit_grants()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  candidate record;
  expired integer := 0;
begin
  for candidate in
    select distinct g.account_id from public.credit_grants g
    where g.remaining > 0 and g.expires_at <= private.now()
  loop
    perform from public.credit_balances w where w.account_id = candidate.account_id for update skip locked;
    continue when not found;
    expired := expired + private.expire_account_grants(candidate.account_id);
  end loop;
  perform private.release_expired_holds();
  return expired;
end
$$;
comment on function private.expire_credit_grants() is
  'Expires every lot past its expiry (one expire ledger entry each) and releases expired holds. Idempotent and safe to run concurrently (pg_cron, or the test runner); returns how many lots it expired.';

-- ---------------------------------------------------------------------------
-- Staff adjustments
-- ---------------------------------------------------------------------------
create or replace function public.admin_adjust_credits(
  account_id uuid,
  delta bigint,
  reason text,
  idempotency_key text default null
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  wallet public.credit_balances;
  key text := 'admin:' || idempotency_key;
  details jsonb := pg_catalog.jsonb_build_object('reason', reason);
  earlier public.credit_ledger;
begin
  if not private.is_trusted_caller() and not public.is_staff_admin() then
    raise exception using errcode = '42501', message = 'permission denied', detail = 'only staff admins adjust credits';
  end if;
  if delta is null or delta = 0 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'delta must be a non-zero number of credits';
  end if;
  if reason is null or length(btrim(reason)) < 3 or length(reason) > 500 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'reason must be 3 to 500 characters';
  end if;
  -- A repeated key replays; the same key with another delta or reason is a conflict.
  if key is not null then
    select l.* into earlier from public.credit_ledger l
    where l.account_id = admin_adjust_credits.account_id and l.idempotency_key = key;
    if found then
      if earlier.delta <> delta or earlier.metadata ->> 'reason' is distinct from reason then
        raise exception using errcode = 'PT409', message = 'idempotency_conflict',
          detail = 'this idempotency_key was used with other parameters', hint = 'use a new idempotency_key for a different adjustment';
      end if;
      select w.* into wallet from public.credit_balances w where w.account_id = admin_adjust_credits.account_id;
      return pg_catalog.jsonb_build_object('balance', wallet.balance, 'available', wallet.available);
    end if;
  end if;
  if delta > 0 then
    perform private.grant_credits(admin_adjust_credits.account_id, delta, 'admin', null, key, null, details);
    select w.* into wallet from public.credit_balances w where w.account_id = admin_adjust_credits.account_id;
  else
    wallet := private.clawback_credits(admin_adjust_credits.account_id, -delta, 'admin_adjust', key, null, null, details);
  end if;
  return pg_catalog.jsonb_build_object('balance', wallet.balance, 'available', wallet.available);
end
$$;
comment on function public.admin_adjust_credits(uuid, bigint, text, text) is
  'Staff admins add (a never-expiring admin grant) or remove credits (drawn down, the rest owed as a debt), with a reason. Idempotent by idempotency_key. Returns {balance, available}.';

-- ---------------------------------------------------------------------------
-- The wallet of every account, and the signup bonus
-- ---------------------------------------------------------------------------
create or replace function private.on_account_created(account_id uuid, user_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  bonus bigint := coalesce((private.setting('signup_bonus_credits') #>> '{}')::bigint, 0);
  lifetime interval := private.setting_interval('signup_bonus_expires_after', null);
begin
  insert into public.credit_balances (account_id) values (on_account_created.account_id)
  on conflict on constraint credit_balances_pkey do nothing;
  -- The personal account (its id is the user's) gets the signup bonus, once; anonymous
  -- sign-ups (auth.users.is_anonymous) get none, so throw-away sessions cannot farm credits.
  if on_account_created.account_id = on_account_created.user_id and bonus > 0
     and not exists (select 1 from auth.users u
                     where u.id = on_account_created.user_id and u.is_anonymous) then
    perform private.grant_credits(on_account_created.account_id, bonus, 'signup_bonus',
      private.now() + lifetime, 'signup_bonus', null, '{}'::jsonb);
  end if;
end
$$;
comment on function private.on_account_created(uuid, uuid) is
  'Called once per new account: creates its wallet and, for the personal account of a user who is not anonymous (auth.users.is_anonymous), grants the signup bonus (settings signup_bonus_credits, signup_bonus_expires_after).';

insert into public.credit_balances (account_id)
select a.id from public.accounts a
on conflict (account_id) do nothing;

-- ---------------------------------------------------------------------------
-- Row level security: members with credits.read see their wallets; staff admins all
-- ---------------------------------------------------------------------------
alter table public.credit_balances enable row level security;
alter table public.credit_grants enable row level security;
alter table public.credit_ledger enable row level security;
alter table public.usage_events enable row level security;
alter table public.credit_holds enable row level security;

grant select on public.credit_balances, public.credit_grants, public.credit_ledger, public.usage_events, public.credit_holds
  to authenticated, service_role;

create policy "Members with credits.read can read their account's balance" on public.credit_balances
  for select to authenticated
  using (account_id in (select public.user_account_ids('credits.read')) or (select public.is_staff_admin()));
create policy "Members with credits.read can read their account's grants" on public.credit_grants
  for select to authenticated
  using (account_id in (select public.user_account_ids('credits.read')) or (select public.is_staff_admin()));
create policy "Members with credits.read can read their account's ledger" on public.credit_ledger
  for select to authenticated
  using (account_id in (select public.user_account_ids('credits.read')) or (select public.is_staff_admin()));
create policy "Members with credits.read can read their account's usage" on public.usage_events
  for select to authenticated
  using (account_id in (select public.user_account_ids('credits.read')) or (select public.is_staff_admin()));
create policy "Members with credits.read can read their account's holds" on public.credit_holds
  for select to authenticated
  using (account_id in (select public.user_account_ids('credits.read')) or (select public.is_staff_admin()));

-- ---------------------------------------------------------------------------
-- The API
-- ---------------------------------------------------------------------------
grant execute on function public.consume_credits(uuid, text, integer, text, jsonb) to authenticated, service_role;
grant execute on function public.reserve_credits(uuid, text, integer, text, integer) to authenticated, service_role;
grant execute on function public.capture_credits(uuid, integer) to authenticated, service_role;
grant execute on function public.release_credits(uuid) to authenticated, service_role;
grant execute on function public.admin_adjust_credits(uuid, bigint, text, text) to authenticated, service_role;
