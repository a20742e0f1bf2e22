-- Referrals: a user brings another; both may be rewarded with promotional credits.
--
-- Rules: a code applies at signup (raw_user_meta_data.referral_code) or by
-- redeem_referral_code(code) within the window after signup (setting, 30 days); once
-- per user; never an anonymous user (auth.users.is_anonymous); never one's own code; never a cycle (the referee may not be an ancestor of
-- the referrer); a referrer earns at most referral_monthly_cap rewards per calendar
-- month (further referrals are recorded, unrewarded). Rewards are paid on signup or on
-- the referee's first payment (setting), idempotently: each reward is a grant keyed by
-- the referral.

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('referral_referrer_reward', '30', 'Credits the referrer earns per referral.'),
  ('referral_referee_reward', '0', 'Credits the referred user earns.'),
  ('referral_reward_on', '"signup"', 'When rewards are paid: "signup" or "first_payment" (the referee''s first successful payment).'),
  ('referral_monthly_cap', '20', 'Most rewarded referrals per referrer per calendar month (UTC).'),
  ('referral_window', '"30 days"', 'How long after signup a user may still redeem a referral code.')
on conflict (key) do nothing;

-- ---------------------------------------------------------------------------
-- referrals
-- ---------------------------------------------------------------------------
create table public.referrals (
  id uuid primary key default gen_random_uuid(),
  referrer_id uuid not null references auth.users (id) on delete cascade,
  referee_id uuid not null unique references auth.users (id) on delete cascade,
  code text not null,
  status text not null check (status in ('pending', 'rewarded', 'capped')),
  referrer_reward bigint not null default 0 check (referrer_reward >= 0),
  referee_reward bigint not null default 0 check (referee_reward >= 0),
  created_at timestamptz not null default now(),
  rewarded_at timestamptz,
  constraint referrals_no_self_referral check (referrer_id <> referee_id)
);
comment on table public.referrals is
  'Who referred whom, with which code, and what each side earned. Readable by both parties. pending: rewards wait for the referee''s first payment; capped: the referrer had reached the monthly cap.';
create index referrals_referrer_created_idx on public.referrals (referrer_id, created_at);

alter table public.referrals enable row level security;
grant select on public.referrals to authenticated, service_role;
create policy "Users can read the referrals they made or came from" on public.referrals
  for select to authenticated
  using (referrer_id = (select auth.uid()) or referee_id = (select auth.uid()) or (select public.is_staff_admin()));

-- ---------------------------------------------------------------------------
-- Awarding
-- ---------------------------------------------------------------------------
create or replace function private.award_referral(referral_id uuid)
returns public.referrals
language plpgsql
set search_path = ''
as $$
declare
  r public.referrals;
  cap bigint := coalesce((private.setting('referral_monthly_cap') #>> '{}')::bigint, 20);
  referrer_amount bigint := coalesce((private.setting('referral_referrer_reward') #>> '{}')::bigint, 0);
  referee_amount bigint := coalesce((private.setting('referral_referee_reward') #>> '{}')::bigint, 0);
  rewarded_this_month bigint;
begin
  select * into r from public.referrals x where x.id = referral_id for update;
  if r.status <> 'pending' then
    return r;
  end if;
  -- Serialize a referrer's awards so the monthly cap holds under concurrency.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('referral:' || r.referrer_id::text, 0));
  select count(*) into rewarded_this_month from public.referrals x
  where x.referrer_id = r.referrer_id and x.status = 'rewarded'
    and x.rewarded_at >= pg_catalog.date_trunc('month', private.now(), 'UTC');
  if rewarded_this_month >= cap then
    update public.referrals x set status = 'capped' where x.id = r.id returning * into r;
    return r;
  end if;
  if referrer_amount > 0 then
    perform private.grant_credits(r.referrer_id, referrer_amount, 'referral', null,
      'referral:' || r.id || ':referrer', null, pg_catalog.jsonb_build_object('referral_id', r.id, 'referee_id', r.referee_id));
  end if;
  if referee_amount > 0 then
    perform private.grant_credits(r.referee_id, referee_amount, 'referral', null,
      'referral:' || r.id || ':referee', null, pg_catalog.jsonb_build_object('referral_id', r.id, 'referrer_id', r.referrer_id));
  end if;
  update public.referrals x
     set status = 'rewarded', referrer_reward = referrer_amount,
         referee_reward = referee_amount, rewarded_at = private.now()
   where x.id = r.id
  returning * into r;
  return r;
end
$$;
comment on function private.award_referral(uuid) is
  'Pays a pending referral''s rewards into both personal accounts (grants keyed by the referral, so never twice) unless the referrer reached the monthly cap.';

create or replace function private.apply_referral(referee_id uuid, code text)
returns public.referrals
language plpgsql
set search_path = ''
as $$
declare
  referrer uuid;
  ancestor uuid;
  depth integer := 0;
  r public.referrals;
  normalized text := upper(btrim(code));
begin
  -- Anonymous sign-ups cost nothing to make: they are never referees (no farming rewards).
  if exists (select 1 from auth.users u where u.id = apply_referral.referee_id and u.is_anonymous) then
    raise exception using errcode = '22023', message = 'anonymous_user', detail = 'sign up with an email first';
  end if;
  if normalized is null or normalized !~ '^[2-9A-HJKMNP-Z]{8}$' then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such referral code';
  end if;
  select p.id into referrer from public.profiles p where p.referral_code = normalized;
  if not found then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such referral code';
  end if;
  if referrer = referee_id then
    raise exception using errcode = '22023', message = 'self_referral', detail = 'you cannot use your own referral code';
  end if;
  -- No cycles: the referee must not be among the referrer's ancestors.
  ancestor := referrer;
  while ancestor is not null and depth < 1000 loop
    select p.referred_by into ancestor from public.profiles p where p.id = ancestor;
    if ancestor = referee_id then
      raise exception using errcode = '22023', message = 'referral_cycle', detail = 'this user was referred by you, directly or indirectly';
    end if;
    depth := depth + 1;
  end loop;

  -- Once per user: the profile row lock serializes concurrent attempts.
  perform from public.profiles p where p.id = referee_id and p.referred_by is null for update;
  if not found then
    raise exception using errcode = 'PT409', message = 'already_referred', detail = 'a referral code was already applied to this account';
  end if;
  update public.profiles p set referred_by = referrer where p.id = referee_id;
  insert into public.referrals (referrer_id, referee_id, code, status, created_at)
  values (referrer, referee_id, normalized, 'pending', private.now())
  returning * into r;

  if coalesce(private.setting('referral_reward_on') #>> '{}', 'signup') = 'signup' then
    r := private.award_referral(r.id);
  end if;
  return r;
end
$$;
comment on function private.apply_referral(uuid, text) is
  'Records that the code''s owner referred this user (22023 anonymous_user for an anonymous referee, PT404 not_found, 22023 self_referral / referral_cycle, PT409 already_referred) and, when rewards are paid on signup, pays them.';

-- At signup: the code from raw_user_meta_data (errors become warnings in the signup trigger).
create or replace function private.on_signup(user_id uuid, referral_code text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if referral_code is not null then
    perform private.apply_referral(on_signup.user_id, on_signup.referral_code);
  end if;
end
$$;
comment on function private.on_signup(uuid, text) is
  'Called once per new user: applies the referral code given at signup, if any. A bad code is logged by the signup trigger and never blocks the signup.';

-- On a payment: billing calls this for every successful payment of an account.
create or replace function private.on_payment_succeeded(account_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  pending uuid;
begin
  if coalesce(private.setting('referral_reward_on') #>> '{}', 'signup') <> 'first_payment' then
    return;
  end if;
  -- A personal account's id is its user's id: that user's pending referral is now earned.
  select r.id into pending from public.referrals r where r.referee_id = on_payment_succeeded.account_id and r.status = 'pending';
  if found then
    perform private.award_referral(pending);
  end if;
end
$$;
comment on function private.on_payment_succeeded(uuid) is
  'Billing calls it for each successful payment; when referral rewards wait for the first payment, pays them (idempotent).';

-- ---------------------------------------------------------------------------
-- The API
-- ---------------------------------------------------------------------------
create or replace function public.redeem_referral_code(code text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  signed_up timestamptz;
  r public.referrals;
begin
  perform private.rate_limit('redeem_referral_code', uid);
  select u.created_at into signed_up from auth.users u where u.id = uid;
  if signed_up < private.now() - private.setting_interval('referral_window', interval '30 days') then
    raise exception using errcode = '22023', message = 'referral_window_closed',
      detail = 'referral codes can be redeemed only in the first days after signup';
  end if;
  r := private.apply_referral(uid, code);
  return pg_catalog.jsonb_build_object('status', r.status, 'referrer_reward', r.referrer_reward, 'referee_reward', r.referee_reward);
end
$$;
comment on function public.redeem_referral_code(text) is
  'Applies a referral code to the signed-in user within the referral window. Returns {status: rewarded | pending | capped, referrer_reward, referee_reward}. Errors: PT404 not_found, PT409 already_referred, 22023 anonymous_user / self_referral / referral_cycle / referral_window_closed, PT429 rate_limited.';

grant execute on function public.redeem_referral_code(text) to authenticated;
