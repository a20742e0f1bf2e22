-- Seats (SPEC §4.15): a plan priced per seat keeps its Stripe subscription item's quantity
-- equal to the account's billable members.
--
--   plans.seat_pricing                       {per_seat, prepaid, proration_behavior, count_pending_invitations}
--   private.billable_seats(account_id)       members (+ pending invitations when the plan says so)
--   private.request_seat_sync(account_id)    one pending seats.sync job per subscription (coalesced)
--   private.seat_sync_request(...)           what the runner sends: re-read at run time, the latest count wins
--   private.seat_sync_done(...)              what was sent
--   private.account_member_limit(...)        prepaid seats cap members at the quantity paid for
--
-- Membership changes (account_members, account_invitations) and subscription changes
-- (customer.subscription.updated records the quantity Stripe has) call request_seat_sync: when
-- the count and the recorded quantity differ, a job is queued unless one is already pending for
-- that subscription. A burst of changes makes one job, and so one Stripe update, or two when a
-- change lands while the first job is running.

insert into private.settings (key, value, description) values
  ('seat_sync_delay_seconds', '2', 'How long a seat sync waits after the first membership change, so a burst makes one Stripe update.')
on conflict (key) do nothing;

insert into private.job_kinds (kind, description, sql_function, max_attempts, base_delay, max_delay, give_up_after, lease, on_finish)
values ('seats.sync', 'Sets a per-seat subscription''s item quantity in Stripe to the account''s billable members (the dispatcher''s Stripe runner).',
        null, 20, interval '10 seconds', interval '30 minutes', interval '3 days', interval '2 minutes', null)
on conflict (kind) do nothing;

-- ---------------------------------------------------------------------------
-- plans.seat_pricing
-- ---------------------------------------------------------------------------
-- Written out in the constraint (not a function call): whoever edits the catalog needs no
-- EXECUTE on a private function.
alter table public.plans add column seat_pricing jsonb
  constraint plans_seat_pricing_valid check (seat_pricing is null or (
    jsonb_typeof(seat_pricing) = 'object'
    and seat_pricing - array['per_seat', 'prepaid', 'proration_behavior', 'count_pending_invitations'] = '{}'::jsonb
    and jsonb_typeof(seat_pricing -> 'per_seat') = 'boolean'
    and coalesce(jsonb_typeof(seat_pricing -> 'prepaid'), 'boolean') = 'boolean'
    and coalesce(jsonb_typeof(seat_pricing -> 'count_pending_invitations'), 'boolean') = 'boolean'
    and coalesce(seat_pricing ->> 'proration_behavior', 'create_prorations') in ('create_prorations', 'none', 'always_invoice')));
comment on column public.plans.seat_pricing is
  'Null: not priced per seat. Else {"per_seat": true, "prepaid": false, "proration_behavior": "create_prorations" | "none" | "always_invoice", "count_pending_invitations": false}: the subscription item''s quantity follows the billable members (members, plus pending invitations when count_pending_invitations), changed with proration_behavior (default create_prorations). prepaid: the quantity is what the customer bought (never synced from the members) and members may not exceed it (invitations are refused with member_limit_reached until seats are bought).';

create or replace function private.seat_pricing(plan_key text)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select p.seat_pricing from public.plans p
  where p.key = seat_pricing.plan_key and coalesce((p.seat_pricing ->> 'per_seat')::boolean, false)
$$;
comment on function private.seat_pricing(text) is 'The plan''s seat_pricing when it is priced per seat, else null.';

create or replace function private.billable_seats(account_id uuid, count_pending_invitations boolean)
returns integer
language sql
stable
set search_path = ''
as $$
  select (select count(*) from public.account_members m where m.account_id = billable_seats.account_id)::integer
       + case when billable_seats.count_pending_invitations then
           (select count(*) from public.account_invitations i
            where i.account_id = billable_seats.account_id and i.accepted_at is null and i.expires_at > private.now())::integer
         else 0 end
$$;
comment on function private.billable_seats(uuid, boolean) is 'The seats an account uses: its members, plus its pending unexpired invitations when asked.';

-- ---------------------------------------------------------------------------
-- Coalesced sync jobs
-- ---------------------------------------------------------------------------
create table private.seat_syncs (
  subscription_id uuid primary key references public.subscriptions (id) on delete cascade,
  quantity integer not null check (quantity >= 0),
  stripe_subscription_item_id text,
  synced_at timestamptz not null
);
comment on table private.seat_syncs is 'The last quantity sent to Stripe per subscription, and the item it was set on.';
alter table private.seat_syncs enable row level security;
create policy "Clients never access seat syncs" on private.seat_syncs
  as restrictive for all to anon, authenticated using (false) with check (false);

create or replace function private.request_seat_sync(account_id uuid)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  s record;
  queued integer := 0;
  delay integer := coalesce((private.setting('seat_sync_delay_seconds') #>> '{}')::integer, 2);
begin
  for s in
    select x.id, x.quantity, sp.pricing
    from public.subscriptions x
    cross join lateral (select private.seat_pricing(x.plan_key) as pricing) sp
    where x.account_id = request_seat_sync.account_id
      and x.status in ('trialing', 'active', 'past_due') and sp.pricing is not null
      -- Prepaid seats are bought, not counted: the quantity stays what was paid for.
      and not coalesce((sp.pricing ->> 'prepaid')::boolean, false)
  loop
    if private.billable_seats(request_seat_sync.account_id,
                              coalesce((s.pricing ->> 'count_pending_invitations')::boolean, false)) = s.quantity then
      continue;
    end if;
    -- One pending job per subscription: concurrent changes queue behind this lock, and the
    -- second sees the first one's job (each statement reads what committed before it).
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('seats.sync:' || s.id, 0));
    if not exists (select from private.jobs j
                   where j.kind = 'seats.sync' and j.status = 'pending' and j.payload ->> 'subscription_id' = s.id::text) then
      perform private.enqueue_job('seats.sync', pg_catalog.jsonb_build_object('subscription_id', s.id),
        'seats.sync:' || s.id || ':' || extensions.gen_random_uuid(), private.now() + pg_catalog.make_interval(secs => delay));
      queued := queued + 1;
    end if;
  end loop;
  return queued;
end
$$;
comment on function private.request_seat_sync(uuid) is
  'Queues a seats.sync job for each live per-seat subscription of the account whose recorded quantity differs from its billable seats, unless one is pending already (the pending job reads the count when it runs). Returns how many were queued.';

create or replace function private.seat_sync_request(subscription_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'stripe_subscription_id', s.stripe_subscription_id, 'stripe_price_id', s.stripe_price_id,
    'stripe_subscription_item_id', (select y.stripe_subscription_item_id from private.seat_syncs y where y.subscription_id = s.id),
    'quantity', private.billable_seats(s.account_id, coalesce((sp.pricing ->> 'count_pending_invitations')::boolean, false)),
    'recorded_quantity', s.quantity,
    'proration_behavior', coalesce(sp.pricing ->> 'proration_behavior', 'create_prorations'))
  from public.subscriptions s
  cross join lateral (select private.seat_pricing(s.plan_key) as pricing) sp
  where s.id = seat_sync_request.subscription_id
    and s.status in ('trialing', 'active', 'past_due') and sp.pricing is not null
    and not coalesce((sp.pricing ->> 'prepaid')::boolean, false)
$$;
comment on function private.seat_sync_request(uuid) is
  'What a seats.sync job sends, read when it runs (the latest count wins): the subscription, its price, the billable seats and the plan''s proration behaviour; null when the subscription is no longer live or per seat.';

create or replace function private.seat_sync_done(subscription_id uuid, quantity integer, stripe_subscription_item_id text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into private.seat_syncs as y (subscription_id, quantity, stripe_subscription_item_id, synced_at)
  values (seat_sync_done.subscription_id, seat_sync_done.quantity, seat_sync_done.stripe_subscription_item_id, private.now())
  on conflict on constraint seat_syncs_pkey do update set
    quantity = excluded.quantity, stripe_subscription_item_id = excluded.stripe_subscription_item_id, synced_at = excluded.synced_at;
end
$$;
comment on function private.seat_sync_done(uuid, integer, text) is
  'Records the quantity a seats.sync job set in Stripe. The subscription''s own quantity is recorded when Stripe''s customer.subscription.updated arrives.';

-- ---------------------------------------------------------------------------
-- Triggers: membership and subscription changes
-- ---------------------------------------------------------------------------
create or replace function private.seats_changed()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  account uuid := case when tg_op = 'DELETE' then old.account_id else new.account_id end;
begin
  -- The cheap check first: most accounts have no per-seat subscription.
  if exists (select from public.subscriptions s
             where s.account_id = account and s.status in ('trialing', 'active', 'past_due')
               and private.seat_pricing(s.plan_key) is not null) then
    perform private.request_seat_sync(account);
  end if;
  return null;
end
$$;
comment on function private.seats_changed() is
  'AFTER trigger on account_members, account_invitations and subscriptions: queues a seat sync for the account''s per-seat subscriptions (a subscription update whose quantity differs from the seats used reconciles it).';

create trigger account_members_seats
  after insert or delete on public.account_members
  for each row execute function private.seats_changed();
create trigger account_invitations_seats
  after insert or update of accepted_at, expires_at or delete on public.account_invitations
  for each row execute function private.seats_changed();
create trigger subscriptions_seats
  after insert or update of quantity, plan_key, status on public.subscriptions
  for each row execute function private.seats_changed();

-- ---------------------------------------------------------------------------
-- Prepaid seats cap members
-- ---------------------------------------------------------------------------
create or replace function private.prepaid_seats(account_id uuid)
returns integer
language sql
stable
set search_path = ''
as $$
  select max(s.quantity) from public.subscriptions s
  where s.account_id = prepaid_seats.account_id and s.status in ('trialing', 'active', 'past_due')
    and coalesce((private.seat_pricing(s.plan_key) ->> 'prepaid')::boolean, false)
$$;
comment on function private.prepaid_seats(uuid) is 'The seats paid for on the account''s live prepaid-seat subscription, else null.';

create or replace function private.account_member_limit(account_id uuid, out plan_key text, out max_members integer)
returns record
language sql
stable
set search_path = ''
as $$
  select ap.plan_key,
         case when private.prepaid_seats(account_member_limit.account_id) is null then p.max_members
              else least(coalesce(p.max_members, 2147483647), private.prepaid_seats(account_member_limit.account_id)) end
  from private.account_plan(account_member_limit.account_id) ap
  left join public.plans p on p.key = ap.plan_key
$$;
comment on function private.account_member_limit(uuid) is
  'The plan an account is on (private.account_plan) and the most members it allows, the owner included: the plan''s max_members, capped by the seats paid for on a prepaid-seat plan (null = unlimited). invite_member and accept_invitation enforce it.';

create or replace function private.require_member_room(account_id uuid, count_invitations boolean, replaced_email text default null)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  plan_key text;
  max_members integer;
  taken bigint;
  prepaid integer;
begin
  select l.plan_key, l.max_members into plan_key, max_members
  from private.account_member_limit(require_member_room.account_id) l;
  if max_members is null then
    return;
  end if;
  select count(*) into taken from public.account_members m where m.account_id = require_member_room.account_id;
  if require_member_room.count_invitations then
    taken := taken + (
      select count(*) from public.account_invitations i
      where i.account_id = require_member_room.account_id
        and i.accepted_at is null
        and i.expires_at > private.now()
        and i.email is distinct from require_member_room.replaced_email);
  end if;
  if taken + 1 > max_members then
    prepaid := private.prepaid_seats(require_member_room.account_id);
    if prepaid is not null and prepaid = max_members then
      raise exception using errcode = 'PT409', message = 'member_limit_reached',
        detail = pg_catalog.format('%s seat(s) are paid for on the %s plan and all are taken%s', prepaid, plan_key,
                        case when require_member_room.count_invitations then ' (pending invitations count)' else '' end),
        hint = 'add seats: raise the subscription''s quantity in the billing portal (POST /functions/v1/billing-portal), or remove a member or a pending invitation';
    end if;
    raise exception using errcode = 'PT409', message = 'member_limit_reached',
      detail = pg_catalog.format('the %s plan allows at most %s member(s), the owner included%s', plan_key, max_members,
                      case when require_member_room.count_invitations then '; pending invitations count' else '' end),
      hint = 'upgrade the plan or remove a member';
  end if;
end
$$;
comment on function private.require_member_room(uuid, boolean, text) is
  'Raises PT409 member_limit_reached unless one more member fits private.account_member_limit (the plan''s max_members, or the seats paid for on a prepaid-seat plan, whose hint says how to add seats): counts the members and, when count_invitations, the pending unexpired invitations except one to replaced_email (which the new one replaces). Call it with the account row locked (private.lock_account).';
