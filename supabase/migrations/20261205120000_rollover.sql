-- Rollover: a plan's unused included credits carry into the next periods (SPEC §4.14).
--
--   plans.rollover   {"max_credits": n, "periods": p}   (null: nothing rolls over)
--
-- When the roll happens
--   A subscription invoice's plan credits expire at the end of the invoiced period, which is
--   the moment the next period begins; the next invoice is paid at that moment or later (Stripe
--   finalizes renewals about an hour after the period starts, and retries failed payments for
--   days). Rolling when the next invoice is granted would race with expiry: the sweeper, or
--   the next consumption, expires the lot first. So the roll happens where the lot ends: when
--   private.expire_account_grants reaches a plan-credit lot whose subscription is still set to
--   renew (active, trialing or past_due, not cancelling at the period end), the unused credits,
--   up to the cap, move into a lot of their own and only the rest expires. Nothing is lost to
--   an ordering, and the customer never sees a gap between periods.
--
-- The cap
--   max_credits x the invoice's quantity is the most a subscription carries at any time: an
--   earlier rolled lot still alive counts against it. A rolled lot does not roll again; it
--   expires p periods (of the invoiced period's length) after the period it came from ended.
--
-- The ledger
--   Two entries with reason rollover: a negative one on the old lot and a positive one on the
--   new lot; the balance is unchanged, and balance = sum of deltas = sum of unexpired
--   remaining still holds. The part above the cap expires as before (reason expire).
--
-- Refunds
--   The rolled lot keeps the payment_id of the invoice it derives from, so a refund or a
--   dispute of the old invoice (private.sync_payment) takes back what still derives from it:
--   private.clawback_credits now takes from the payment's own lots (the grant, then its rolled
--   lots) before it takes from the others in draw-down order.

-- ---------------------------------------------------------------------------
-- Settings on the plan; the ledger says rollover
-- ---------------------------------------------------------------------------
alter table public.plans add column rollover jsonb
  constraint plans_rollover_valid check (rollover is null or coalesce(
    jsonb_typeof(rollover) = 'object'
    and jsonb_typeof(rollover -> 'max_credits') = 'number'
    and jsonb_typeof(rollover -> 'periods') = 'number'
    and (rollover ->> 'max_credits')::numeric >= 1
    and (rollover ->> 'max_credits')::numeric = trunc((rollover ->> 'max_credits')::numeric)
    and (rollover ->> 'periods')::numeric between 1 and 36
    and (rollover ->> 'periods')::numeric = trunc((rollover ->> 'periods')::numeric), false));
comment on column public.plans.rollover is
  'Unused included credits that carry into the next periods: {"max_credits": n, "periods": p} (n x the subscription quantity is the most a subscription carries at once; a rolled lot lives p periods). Null: they expire at the period end.';

alter table public.credit_ledger drop constraint credit_ledger_reason_check;
alter table public.credit_ledger add constraint credit_ledger_reason_check check (reason in (
  'signup_bonus', 'referral', 'purchase', 'subscription', 'admin', 'promo',
  'consume', 'capture', 'expire', 'clawback', 'admin_adjust', 'rollover')) not valid;
alter table public.credit_ledger validate constraint credit_ledger_reason_check;
comment on column public.credit_ledger.reason is
  'A grant''s source, or consume, capture, expire, clawback, admin_adjust, rollover (a pair: minus on the lot that ends, plus on the lot it carries into).';

-- ---------------------------------------------------------------------------
-- The roll of one lot
-- ---------------------------------------------------------------------------
create or replace function private.roll_over(lot public.credit_grants)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  p public.payments;
  sub public.subscriptions;
  settings jsonb;
  period interval;
  cap bigint;
  carried bigint;
  moved bigint;
  expiry timestamptz;
  rolled_id uuid;
  wallet public.credit_balances;
  meta jsonb;
begin
  if lot.source <> 'subscription' or lot.payment_id is null or lot.remaining <= 0
     or lot.expires_at is null or lot.metadata ? 'rolled_from' then
    return 0;
  end if;
  select x.* into p from public.payments x where x.id = lot.payment_id and x.kind = 'subscription_invoice';
  if not found or p.stripe_subscription_id is null then
    return 0;
  end if;
  select pl.rollover into settings from public.plans pl where pl.key = coalesce(p.item_key, lot.metadata ->> 'item');
  if settings is null then
    return 0;
  end if;
  select s.* into sub from public.subscriptions s where s.stripe_subscription_id = p.stripe_subscription_id;
  if not found or sub.status not in ('active', 'trialing', 'past_due') or sub.cancel_at_period_end
     or sub.ended_at is not null or (sub.cancel_at is not null and sub.cancel_at <= lot.expires_at) then
    return 0; -- the subscription does not go on: nothing to carry into
  end if;

  period := coalesce(nullif(p.period_end - p.period_start, interval '0'), interval '1 month');
  expiry := lot.expires_at + period * (settings ->> 'periods')::integer;
  if expiry <= private.now() then
    return 0; -- it would already be over: it simply expires
  end if;
  cap := (settings ->> 'max_credits')::bigint * greatest(coalesce(p.quantity, 1), 1);
  select coalesce(sum(g.remaining), 0) into carried from public.credit_grants g
  where g.account_id = lot.account_id and g.remaining > 0 and g.expires_at > lot.expires_at
    and g.metadata ->> 'subscription_id' = p.stripe_subscription_id and g.metadata ? 'rolled_from';
  moved := least(lot.remaining, greatest(cap - carried, 0));
  if moved <= 0 then
    return 0;
  end if;

  meta := pg_catalog.jsonb_build_object('payment_id', p.id, 'kind', 'rollover', 'item', p.item_key,
    'subscription_id', p.stripe_subscription_id, 'rolled_from', lot.id, 'cap', cap, 'periods', (settings ->> 'periods')::integer);
  update public.credit_grants g set remaining = g.remaining - moved where g.id = lot.id;
  wallet := private.set_wallet(lot.account_id, -moved);
  perform private.write_ledger(wallet, -moved, 'rollover', grant_id => lot.id, payment_id => p.id, metadata => meta);
  insert into public.credit_grants (account_id, source, amount, remaining, expires_at, payment_id, idempotency_key, metadata)
  values (lot.account_id, 'subscription', moved, moved, expiry, p.id, 'rollover:' || lot.id, meta)
  returning id into rolled_id;
  wallet := private.set_wallet(lot.account_id, moved);
  perform private.write_ledger(wallet, moved, 'rollover', grant_id => rolled_id, payment_id => p.id, metadata => meta);
  return moved;
end
$$;
comment on function private.roll_over(public.credit_grants) is
  'At the end of a subscription invoice''s lot: when the plan rolls over and the subscription renews, moves the unused credits, up to max_credits x quantity less what earlier rolls of the subscription still carry, into a lot of their own (same payment, expiring periods x the period length later), with a pair of rollover ledger entries. Returns the credits moved. The wallet row must be locked.';

-- ---------------------------------------------------------------------------
-- Expiry rolls over first
-- ---------------------------------------------------------------------------
create or replace function private.expire_account_grants(account_id uuid)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  lot public.credit_grants;
  wallet public.credit_balances;
  rolled bigint;
  expired integer := 0;
begin
  for lot in
    select g.* from public.credit_grants g
    where g.account_id = expire_account_grants.account_id and g.remaining > 0 and g.expires_at <= at
    order by g.expires_at, g.id
  loop
    rolled := case when lot.source = 'subscription' then private.roll_over(lot) else 0 end;
    update public.credit_grants set remaining = 0 where id = lot.id;
    if lot.remaining > rolled then
      wallet := private.set_wallet(expire_account_grants.account_id, -(lot.remaining - rolled));
      perform private.write_ledger(wallet, -(lot.remaining - rolled), 'expire', grant_id => lot.id);
    end if;
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
  'Ends the lots of one wallet whose time has come: a plan-credit lot first rolls over what its plan carries (private.roll_over), the rest expires (an expire ledger entry); then refreshes next_expiry_at. The wallet row must be locked.';

-- ---------------------------------------------------------------------------
-- Clawbacks take from the payment's own lots, rolled ones included
-- ---------------------------------------------------------------------------
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
  from_payment bigint := 0;
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

  -- Then from the other lots the payment still delivers (rolled over, given back), soonest
  -- expiry first.
  if payment_id is not null and from_lot < amount then
    with lots as (
      select g.id, g.remaining,
             sum(g.remaining) over (order by g.expires_at, g.created_at, g.seq) as upto
      from public.credit_grants g
      where g.account_id = clawback_credits.account_id and g.payment_id = clawback_credits.payment_id
        and g.id is distinct from from_grant and g.source <> 'clawback' and g.remaining > 0
        and (g.expires_at is null or g.expires_at > private.now())
    ), take as (
      select l.id, least(l.remaining, clawback_credits.amount - from_lot - (l.upto - l.remaining)) as n
      from lots l where l.upto - l.remaining < clawback_credits.amount - from_lot
    ), taken as (
      update public.credit_grants g set remaining = g.remaining - take.n
      from take where g.id = take.id
      returning take.n
    )
    select coalesce(sum(n), 0) into from_payment from taken;
  end if;

  select coalesce(sum(g.remaining), 0) into positive from public.credit_grants g
  where g.account_id = clawback_credits.account_id and g.remaining > 0
    and (g.expires_at is null or g.expires_at > private.now());
  from_others := least(clawback_credits.amount - from_lot - from_payment, positive);
  perform private.draw_down(clawback_credits.account_id, from_others);

  -- What could not be taken back is owed: a debt lot that new grants repay.
  owed := amount - from_lot - from_payment - from_others;
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
  'Takes credits back (refunds, disputes, staff corrections): first from the given lot, then from the payment''s other lots (rolled over, given back), then in draw-down order, the rest as a debt. Open holds shrink so held <= balance. Idempotent by (account, idempotency_key).';
