-- Abuse guards: what an adversarial review of a running stack could do and now cannot.
--
--   Money
--   * Signup bonus and referral rewards wait for a confirmed identity (email or phone),
--     including a confirmation that arrives later; setting require_confirmed_identity.
--   * Deleting an account (delete_account, or a user with their personal account) is refused
--     while Stripe may still charge (PT409 billing_active); payments,
--     subscriptions, their history and the Stripe customer link outlive the account (no
--     cascade), so later webhooks land on them; private.closed_accounts remembers the account.
--   * Referral cycles are checked under one lock, so two users redeeming each other's codes
--     at once cannot both succeed.
--   * create_team_account is rate-limited (policy create_team_account) and capped per owner
--     (setting max_team_accounts_per_user); a plan trial is granted once per owner across
--     all their accounts (private.trial_claims).
--   * Checkout Sessions our checkout function created are recorded
--     (private.checkout_sessions); only they link customers and earn credits. Any other
--     session is recorded flagged unverified_session, credits nothing and links nothing.
--
--   Input and existence
--   * Account names and full names refuse control, bidirectional-override and zero-width
--     characters (22023 unsafe_characters); sign-up metadata is cleaned instead, so it never
--     blocks a signup. profiles.preferences is size-capped (22023 preferences_too_large).
--   * invite_member validates addresses with private.normalize_email, as join_waitlist does.
--   * revoke_invitation, revoke_api_key, capture_credits and release_credits answer a
--     foreign id (of an account the caller is not a member of) exactly like an unknown one:
--     PT404 not_found.

-- ---------------------------------------------------------------------------
-- Settings and the rate-limit policy
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('require_confirmed_identity', 'true',
   'Whether the signup bonus and referral rewards wait until the user''s email or phone is confirmed (auth.users.email_confirmed_at / phone_confirmed_at). Set false only when the project does not require confirmation. Anonymous users are never paid.'),
  ('max_team_accounts_per_user', '10', 'Most team accounts one user may own (as primary owner) at once.'),
  ('profile_preferences_max_bytes', '16384', 'Largest profiles.preferences, in bytes of its JSON text.')
on conflict (key) do nothing;

insert into private.rate_limit_policies (name, capacity, refill_per_second, scope, description) values
  ('create_team_account', 5, 0.0166667, 'user', 'Team accounts created by one user: 5 at once, then one a minute.')
on conflict (name) do nothing;

-- ---------------------------------------------------------------------------
-- Names other users see
-- ---------------------------------------------------------------------------
create function private.has_unsafe_characters(value text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- C0 and C1 controls, soft hyphen, Arabic letter mark, Mongolian vowel separator,
  -- zero-width space / joiners and LRM / RLM, bidi embeddings and overrides (U+202A-202E),
  -- word joiner and invisible operators, bidi isolates (U+2066-2069) and the other
  -- deprecated format characters, and the zero-width no-break space (BOM).
  return value ~ '[\u0001-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF]';
end
$$;
comment on function private.has_unsafe_characters(text) is
  'Whether the text carries control, bidirectional-override or zero-width characters, which let a name spoof what other users read (e.g. an invitation title).';

create function private.strip_unsafe_characters(value text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.regexp_replace(value,
    '[\u0001-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF]', '', 'g');
end
$$;
comment on function private.strip_unsafe_characters(text) is
  'The text without the characters private.has_unsafe_characters refuses (used where input must not block, such as sign-up metadata).';

create function private.require_safe_text(value text, field text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if private.has_unsafe_characters(value) then
    raise exception using errcode = '22023', message = 'unsafe_characters',
      detail = pg_catalog.format('%s contains control, bidirectional-override or zero-width characters', field),
      hint = 'Use visible characters only.';
  end if;
end
$$;
comment on function private.require_safe_text(text, text) is 'Raises 22023 unsafe_characters when the text carries control, bidirectional-override or zero-width characters.';

create function private.check_profile_input()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  max_bytes integer := coalesce((private.setting('profile_preferences_max_bytes') #>> '{}')::integer, 16384);
begin
  if tg_op = 'INSERT' then
    -- The signup trigger copies the name from user metadata: clean it, never block a signup.
    new.full_name := private.strip_unsafe_characters(new.full_name);
  elsif new.full_name is distinct from old.full_name then
    perform private.require_safe_text(new.full_name, 'full_name');
  end if;
  if (tg_op = 'INSERT' or new.preferences is distinct from old.preferences)
     and pg_catalog.octet_length(new.preferences::text) > max_bytes then
    raise exception using errcode = '22023', message = 'preferences_too_large',
      detail = pg_catalog.format('preferences take %s bytes', pg_catalog.octet_length(new.preferences::text)),
      hint = pg_catalog.format('Keep UI preferences under %s bytes (setting profile_preferences_max_bytes).', max_bytes);
  end if;
  return new;
end
$$;
comment on function private.check_profile_input() is
  'BEFORE INSERT/UPDATE on profiles (runs before profiles_validate): refuses unsafe characters in a changed full_name (cleans them at signup) and preferences over profile_preferences_max_bytes.';

create trigger profiles_check_input
  before insert or update on public.profiles
  for each row execute function private.check_profile_input();

create function private.check_account_name()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.name is not distinct from old.name then
    return new;
  elsif tg_op = 'INSERT' and new.kind = 'personal' then
    -- Named at signup from user metadata: clean it, never block a signup.
    new.name := coalesce(nullif(pg_catalog.btrim(private.strip_unsafe_characters(new.name)), ''), 'Personal');
  else
    perform private.require_safe_text(new.name, 'the account name');
  end if;
  return new;
end
$$;
comment on function private.check_account_name() is
  'BEFORE INSERT/UPDATE OF name on accounts: refuses unsafe characters in a team''s or renamed account''s name (22023 unsafe_characters); cleans a personal account''s name at signup.';

create trigger accounts_check_name
  before insert or update of name on public.accounts
  for each row execute function private.check_account_name();

-- ---------------------------------------------------------------------------
-- Invitations: one email rule (the waitlist's); foreign ids are not found
-- ---------------------------------------------------------------------------
create or replace function public.invite_member(account_id uuid, email text, role text default 'member')
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  acc public.accounts;
  clean_email text;
  wanted_rank integer := private.role_rank(invite_member.role);
  token text;
  invitation public.account_invitations;
begin
  perform private.require_permission(invite_member.account_id, 'members.invite');
  acc := private.lock_account(invite_member.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts cannot be shared';
  end if;
  clean_email := private.normalize_email(invite_member.email);
  if wanted_rank is null then
    raise exception using errcode = '22023', message = 'invalid_role', detail = format('unknown role %s', invite_member.role);
  end if;
  if wanted_rank > private.caller_rank(acc.id) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = format('you cannot invite with role %s, which is above your own', invite_member.role);
  end if;
  if exists (select 1 from public.account_members m
             join auth.users u on u.id = m.user_id
             where m.account_id = acc.id and lower(u.email) = clean_email) then
    raise exception using errcode = 'PT409', message = 'already_member', detail = format('%s is already a member', clean_email);
  end if;
  -- the plan's max_members: members plus pending invitations (under the account lock)
  perform private.require_member_room(acc.id, true, clean_email);

  -- inviting again replaces the pending invitation (and invalidates its token)
  delete from public.account_invitations i
  where i.account_id = acc.id and i.email = clean_email and i.accepted_at is null;

  token := translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/=', '-_');
  insert into public.account_invitations (account_id, email, role, invited_by, created_at, expires_at)
  values (acc.id, clean_email, invite_member.role, uid, private.now(),
          private.now() + private.setting_interval('invitation_ttl', interval '7 days'))
  returning * into invitation;
  insert into private.invitation_tokens (invitation_id, token_hash)
  values (invitation.id, encode(extensions.digest(token, 'sha256'), 'hex'));

  return jsonb_build_object('invitation_id', invitation.id, 'token', token, 'expires_at', invitation.expires_at);
end
$$;
comment on function public.invite_member(uuid, text, text) is
  'Invites an email to a team account with a role no higher than the caller''s. Needs members.invite. Returns {invitation_id, token, expires_at}: the token is shown only here (stored as sha256). The address is checked and normalized by private.normalize_email, as join_waitlist does. Replaces a pending invitation to the same email. Members plus pending unexpired invitations may not exceed the plan''s max_members. Errors: 42501, personal_account, invalid_email, invalid_role (22023), already_member, member_limit_reached (PT409).';

create or replace function public.revoke_invitation(invitation_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  invitation public.account_invitations;
begin
  select i.* into invitation from public.account_invitations i
  where i.id = revoke_invitation.invitation_id and i.accepted_at is null;
  -- An invitation of an account the caller is not in answers exactly like an unknown id.
  if invitation.id is null
     or not exists (select from public.account_members m where m.account_id = invitation.account_id and m.user_id = uid) then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no pending invitation with this id';
  end if;
  perform private.require_permission(invitation.account_id, 'members.invite');
  delete from public.account_invitations i where i.id = invitation.id;
end
$$;
comment on function public.revoke_invitation(uuid) is
  'Deletes a pending invitation (its token stops working). Needs members.invite. Errors: not_found (PT404, also for an invitation of an account the caller is not a member of), 42501.';

-- ---------------------------------------------------------------------------
-- API keys: foreign ids are not found
-- ---------------------------------------------------------------------------
create or replace function public.revoke_api_key(id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  found_key public.api_keys;
begin
  select k.* into found_key from public.api_keys k where k.id = revoke_api_key.id for update;
  if not private.is_trusted_caller() then
    -- A key of an account the caller is not in answers exactly like an unknown id.
    if found_key.id is not null
       and not exists (select from public.account_members m
                       where m.account_id = found_key.account_id and m.user_id = auth.uid()) then
      found_key := null;
    end if;
  end if;
  if found_key.id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no API key with this id';
  end if;
  if not private.is_trusted_caller() then
    perform private.require_user();
    perform private.require_permission(found_key.account_id, 'api_keys.manage');
  end if;
  if found_key.revoked_at is null then
    update public.api_keys k set revoked_at = private.now(), revoked_by = auth.uid() where k.id = found_key.id;
  end if;
end
$$;
comment on function public.revoke_api_key(uuid) is
  'Revokes an API key at once (safe to repeat). Needs api_keys.manage in its account (or a trusted server). Errors: PT404 not_found (also for a key of an account the caller is not a member of), 42501.';

-- ---------------------------------------------------------------------------
-- Holds: foreign ids are not found
-- ---------------------------------------------------------------------------
create function private.require_known_hold(hold_id uuid)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  -- Servers see every hold; a user sees only the holds of accounts they are a member of.
  if not private.is_trusted_caller()
     and not exists (select from public.credit_holds h
                     join public.account_members m on m.account_id = h.account_id and m.user_id = auth.uid()
                     where h.id = require_known_hold.hold_id) then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such hold';
  end if;
end
$$;
comment on function private.require_known_hold(uuid) is
  'Raises PT404 not_found, exactly as for an unknown id, when a user names a hold of an account they are not a member of.';

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
  perform private.require_known_hold(hold_id);
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
  'Charges a hold: the cost of quantity units (default: the reserved quantity) at the reserved price, at most the held amount, and releases the rest. Returns {usage_event_id, credits_charged, released, balance, available, replayed}; capturing twice replays. PT410 gone for a released or expired hold; PT404 not_found for an unknown hold or one of an account the caller is not a member of.';

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
  perform private.require_known_hold(hold_id);
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
  'Gives a hold''s credits back. Safe to retry: a hold already settled releases 0. Returns {released, available}. PT404 not_found for an unknown hold or one of an account the caller is not a member of.';

-- ---------------------------------------------------------------------------
-- Confirmed identities: the signup bonus and referral rewards
-- ---------------------------------------------------------------------------
create function private.identity_confirmed(user_id uuid)
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce((
    select not u.is_anonymous
           and (u.email_confirmed_at is not null or u.phone_confirmed_at is not null
                or not coalesce((private.setting('require_confirmed_identity') #>> '{}')::boolean, true))
    from auth.users u where u.id = identity_confirmed.user_id), false);
end
$$;
comment on function private.identity_confirmed(uuid) is
  'Whether a user may be paid signup bonuses and referral rewards: not anonymous, and their email or phone is confirmed (or the setting require_confirmed_identity is false).';

create function private.grant_signup_bonus(user_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  bonus bigint := coalesce((private.setting('signup_bonus_credits') #>> '{}')::bigint, 0);
  lifetime interval := private.setting_interval('signup_bonus_expires_after', null);
begin
  -- Once per personal account (its id is the user's): the grant is keyed signup_bonus.
  if bonus > 0 and private.identity_confirmed(grant_signup_bonus.user_id)
     and exists (select from public.credit_balances w where w.account_id = grant_signup_bonus.user_id) then
    perform private.grant_credits(grant_signup_bonus.user_id, bonus, 'signup_bonus',
      private.now() + lifetime, 'signup_bonus', null, '{}'::jsonb);
  end if;
end
$$;
comment on function private.grant_signup_bonus(uuid) is
  'Grants the signup bonus (settings signup_bonus_credits, signup_bonus_expires_after) to the user''s personal account, once, if their identity is confirmed (private.identity_confirmed).';

create or replace function private.on_account_created(account_id uuid, user_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.credit_balances (account_id) values (on_account_created.account_id)
  on conflict on constraint credit_balances_pkey do nothing;
  -- The personal account (its id is the user's) gets the signup bonus once the identity is
  -- confirmed: now, or when the confirmation arrives (private.on_identity_confirmed).
  if on_account_created.account_id = on_account_created.user_id then
    perform private.grant_signup_bonus(on_account_created.user_id);
  end if;
end
$$;
comment on function private.on_account_created(uuid, uuid) is
  'Called once per new account: creates its wallet and, for a personal account whose user is confirmed and not anonymous, grants the signup bonus (otherwise it is granted on confirmation).';

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
  -- Nothing is paid for an identity nobody confirmed: it stays pending until confirmation.
  if not private.identity_confirmed(r.referee_id) then
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
  'Pays a pending referral''s rewards into both personal accounts (grants keyed by the referral, so never twice) unless the referrer reached the monthly cap. Waits (stays pending) while the referee''s identity is unconfirmed.';

create function private.on_identity_confirmed(user_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  pending uuid;
begin
  if not private.identity_confirmed(on_identity_confirmed.user_id) then
    return;
  end if;
  perform private.grant_signup_bonus(on_identity_confirmed.user_id);
  -- The referral made at signup is earned now, or, when rewards wait for the first
  -- payment, if that payment already happened.
  select r.id into pending from public.referrals r
  where r.referee_id = on_identity_confirmed.user_id and r.status = 'pending';
  if pending is not null
     and (coalesce(private.setting('referral_reward_on') #>> '{}', 'signup') = 'signup'
          or exists (select from public.payments p
                     where p.account_id = on_identity_confirmed.user_id and p.settlement = 'paid')) then
    perform private.award_referral(pending);
  end if;
end
$$;
comment on function private.on_identity_confirmed(uuid) is
  'Pays what waited for the user''s confirmation: the signup bonus and a pending referral (on signup, or when the first payment already happened). Idempotent.';

create function private.handle_identity_confirmation()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  begin
    perform private.on_identity_confirmed(new.id);
  exception when others then
    -- Paying rewards must never block a confirmation; the next confirmation event retries.
    raise warning 'ledgerbase: rewards after confirming user % failed: % (%)', new.id, sqlerrm, sqlstate;
  end;
  return new;
end
$$;
comment on function private.handle_identity_confirmation() is
  'AFTER UPDATE on auth.users when the email or phone becomes confirmed or the user stops being anonymous: pays the signup bonus and referral rewards that waited (private.on_identity_confirmed).';

create trigger on_auth_user_confirmed
  after update of email_confirmed_at, phone_confirmed_at, is_anonymous on auth.users
  for each row
  when ((old.email_confirmed_at is null and new.email_confirmed_at is not null)
        or (old.phone_confirmed_at is null and new.phone_confirmed_at is not null)
        or (old.is_anonymous and not new.is_anonymous))
  execute function private.handle_identity_confirmation();

-- ---------------------------------------------------------------------------
-- Referral cycles under concurrency
-- ---------------------------------------------------------------------------
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
  -- One referral is applied at a time: a cycle can close through any two (or more)
  -- concurrent redemptions (A uses B's code while B uses A's, or longer chains), so locking
  -- the two profiles involved is not enough. Referrals are applied once per user, so this
  -- lock is rarely contended; the walk below then sees every referral committed before it.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('referral-graph', 0));
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
  'Records that the code''s owner referred this user (22023 anonymous_user for an anonymous referee, PT404 not_found, 22023 self_referral / referral_cycle, PT409 already_referred) and, when rewards are paid on signup, pays them (once the referee is confirmed). The cycle check runs under one lock for all referrals, so concurrent redemptions cannot close a cycle.';

-- ---------------------------------------------------------------------------
-- Financial records outlive their account
-- ---------------------------------------------------------------------------
create table private.closed_accounts (
  account_id uuid primary key,
  kind text not null,
  name text not null,
  slug text,
  primary_owner uuid,
  created_at timestamptz not null,
  closed_at timestamptz not null default now(),
  closed_by uuid
);
comment on table private.closed_accounts is
  'Accounts that were deleted, kept for accounting: payments, subscriptions, subscription_history and billing_customers still name them by account_id.';
alter table private.closed_accounts enable row level security;
create policy "Clients never access closed accounts" on private.closed_accounts
  as restrictive for all to anon, authenticated using (false) with check (false);

-- Keep the rows: no cascade from accounts (the account id stays as a plain reference).
alter table public.billing_customers drop constraint billing_customers_account_id_fkey;
alter table public.subscriptions drop constraint subscriptions_account_id_fkey;
alter table public.subscription_history drop constraint subscription_history_account_id_fkey;
alter table public.payments drop constraint payments_account_id_fkey;
comment on column public.billing_customers.account_id is 'The account (or, once deleted, private.closed_accounts): the link outlives the account so Stripe''s later events still find it.';
comment on column public.subscriptions.account_id is 'The account (or, once deleted, private.closed_accounts).';
comment on column public.subscription_history.account_id is 'The account (or, once deleted, private.closed_accounts).';
comment on column public.payments.account_id is 'The account (or, once deleted, private.closed_accounts): payments are kept for accounting, and a later refund or dispute still finds them.';

create function private.account_deleted_reason()
returns text
language sql
immutable
set search_path = ''
as $$
  select 'account_deleted: the account was deleted; nothing is credited'::text
$$;
comment on function private.account_deleted_reason() is 'The flagged_reason of payments of a deleted account.';

create function private.remember_closed_account()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  live public.subscriptions;
begin
  -- Stripe may still charge any subscription that has not ended: the account stays until it has.
  select s.* into live from public.subscriptions s
  where s.account_id = old.id and not private.is_terminal_subscription_status(s.status)
  order by s.created_at limit 1;
  if live.id is not null then
    raise exception using errcode = 'PT409', message = 'billing_active',
      detail = pg_catalog.format('subscription %s is %s', live.stripe_subscription_id, live.status),
      hint = 'Cancel the subscription in the billing portal first, then delete the account once it has ended.';
  end if;
  insert into private.closed_accounts (account_id, kind, name, slug, primary_owner, created_at, closed_at, closed_by)
  values (old.id, old.kind, old.name, old.slug, old.primary_owner, old.created_at, private.now(), auth.uid())
  on conflict (account_id) do nothing;
  -- Its wallet goes with it: nothing more is credited to or clawed back from its payments.
  update public.payments p
     set credits_due = 0, credits_granted = 0, credits_clawed_back = 0, credits_held_by_dispute = 0,
         flagged_reason = coalesce(p.flagged_reason, private.account_deleted_reason())
   where p.account_id = old.id;
  return old;
end
$$;
comment on function private.remember_closed_account() is
  'BEFORE DELETE on accounts (delete_account, or the deletion of a user''s personal account): refuses (PT409 billing_active) while a subscription of the account has not ended; otherwise records the account in private.closed_accounts and settles its payments'' credit figures (the wallet is deleted with the account), so later refunds and disputes only update the payment.';

create trigger accounts_remember_closed
  before delete on public.accounts
  for each row execute function private.remember_closed_account();

create function private.guard_closed_account_payment()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select from public.accounts a where a.id = new.account_id) then
    new.credits_due := 0;
    new.flagged_reason := coalesce(new.flagged_reason, private.account_deleted_reason());
  end if;
  return new;
end
$$;
comment on function private.guard_closed_account_payment() is
  'BEFORE INSERT/UPDATE on payments: a payment of a deleted account (an invoice Stripe collects later) is recorded, flagged account_deleted, and earns no credits.';

create trigger payments_guard_closed_account
  before insert or update on public.payments
  for each row execute function private.guard_closed_account_payment();

create or replace function public.delete_account(account_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  acc public.accounts;
begin
  perform private.require_user();
  perform private.require_permission(delete_account.account_id, 'account.delete');
  acc := private.lock_account(delete_account.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account',
      detail = 'a personal account is deleted with its user (delete the auth user)';
  end if;
  -- accounts_remember_closed refuses (billing_active) while a subscription has not ended.
  delete from public.accounts a where a.id = acc.id;
end
$$;
comment on function public.delete_account(uuid) is
  'Deletes a team account with its memberships, invitations and wallet; its payments, subscriptions, subscription history and Stripe customer link are kept (private.closed_accounts names it). Needs account.delete (owners). Errors: 42501, personal_account (22023: deleted with the auth user), billing_active (PT409) while a subscription has not ended.';

-- ---------------------------------------------------------------------------
-- Team creation: rate limit and cap
-- ---------------------------------------------------------------------------
create or replace function public.create_team_account(name text, slug text)
returns public.accounts
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  clean_name text := private.normalize_account_name(create_team_account.name);
  clean_slug text := private.normalize_slug(create_team_account.slug);
  cap integer := coalesce((private.setting('max_team_accounts_per_user') #>> '{}')::integer, 10);
  acc public.accounts;
begin
  if coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = 'anonymous users cannot create team accounts';
  end if;
  perform private.require_safe_text(clean_name, 'the account name');
  perform private.rate_limit('create_team_account');
  -- The caller's profile row serializes their creations, so the cap holds under concurrency.
  perform from public.profiles p where p.id = uid for update;
  if (select count(*) from public.accounts a where a.kind = 'team' and a.primary_owner = uid) >= cap then
    raise exception using errcode = 'PT409', message = 'team_limit_reached',
      detail = pg_catalog.format('you own %s team accounts, the most allowed', cap),
      hint = 'Delete a team you no longer need, or ask the operator to raise max_team_accounts_per_user.';
  end if;
  if exists (select 1 from public.accounts a where a.slug = clean_slug) then
    raise exception using errcode = 'PT409', message = 'slug_taken', detail = format('the slug %s is already taken', clean_slug);
  end if;

  insert into public.accounts (kind, name, slug, primary_owner, created_by, created_at, updated_at)
  values ('team', clean_name, clean_slug, uid, uid, private.now(), private.now())
  returning * into acc;
  insert into public.account_members (account_id, user_id, role, created_at, updated_at)
  values (acc.id, uid, 'owner', private.now(), private.now());

  perform private.on_account_created(acc.id, uid);
  return acc;
exception when unique_violation then
  raise exception using errcode = 'PT409', message = 'slug_taken', detail = format('the slug %s is already taken', clean_slug);
end
$$;
comment on function public.create_team_account(text, text) is
  'Creates a team account owned by the caller (owner membership, primary owner) and returns it. Rate-limited (policy create_team_account, per user) and capped (setting max_team_accounts_per_user teams owned). Errors: invalid_name, invalid_slug, unsafe_characters (22023), rate_limited (PT429), team_limit_reached, slug_taken (PT409).';

-- ---------------------------------------------------------------------------
-- One trial per owner
-- ---------------------------------------------------------------------------
create table private.trial_claims (
  stripe_subscription_id text primary key,
  user_id uuid,
  account_id uuid not null,
  claimed_at timestamptz not null default now()
);
comment on table private.trial_claims is
  'Every subscription that started a trial, with the owner of its account at the time: a trial is offered once per owner, across all the accounts they own (also deleted ones).';
create index trial_claims_user_id_idx on private.trial_claims (user_id);
create index trial_claims_account_id_idx on private.trial_claims (account_id);
alter table private.trial_claims enable row level security;
create policy "Clients never access trial claims" on private.trial_claims
  as restrictive for all to anon, authenticated using (false) with check (false);

create function private.account_owner(account_id uuid)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce(
    (select a.primary_owner from public.accounts a where a.id = account_owner.account_id),
    (select c.primary_owner from private.closed_accounts c where c.account_id = account_owner.account_id));
end
$$;
comment on function private.account_owner(uuid) is 'The primary owner of an account, also of a deleted one.';

create function private.record_trial_claim()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into private.trial_claims (stripe_subscription_id, user_id, account_id, claimed_at)
  values (new.stripe_subscription_id, private.account_owner(new.account_id), new.account_id, coalesce(new.trial_start, private.now()))
  on conflict (stripe_subscription_id) do nothing;
  return new;
end
$$;
comment on function private.record_trial_claim() is 'AFTER INSERT/UPDATE OF trial_start on subscriptions: remembers who had a trial (private.trial_claims).';

create trigger subscriptions_record_trial_claim
  after insert or update of trial_start on public.subscriptions
  for each row when (new.trial_start is not null)
  execute function private.record_trial_claim();

insert into private.trial_claims (stripe_subscription_id, user_id, account_id, claimed_at)
select s.stripe_subscription_id, private.account_owner(s.account_id), s.account_id, s.trial_start
from public.subscriptions s where s.trial_start is not null
on conflict (stripe_subscription_id) do nothing;

create function private.trial_used(account_id uuid)
returns boolean
language plpgsql
stable
set search_path = ''
as $$
declare
  owner uuid := private.account_owner(trial_used.account_id);
begin
  return exists (select from private.trial_claims t
                 where t.account_id = trial_used.account_id or (owner is not null and t.user_id = owner));
end
$$;
comment on function private.trial_used(uuid) is
  'Whether the account, or any account of its primary owner (now or deleted), already had a trial.';

create or replace function public.begin_checkout(
  account_id uuid,
  plan text default null,
  credit_pack text default null,
  quantity integer default 1
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  chosen_plan public.plans;
  chosen_pack public.credit_packs;
  customer public.billing_customers;
  limits jsonb;
  profile_email text;
begin
  if begin_checkout.account_id is null then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'account_id is required';
  end if;
  if (plan is null) = (credit_pack is null) then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'give exactly one of plan and credit_pack';
  end if;
  if quantity is null or quantity < 1 or quantity > 100 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'quantity must be between 1 and 100';
  end if;
  perform private.require_permission(begin_checkout.account_id, 'billing.manage');

  if plan is not null then
    select p.* into chosen_plan from public.plans p
    where p.key = begin_checkout.plan and p.active and p.stripe_price_id is not null;
    if not found then
      raise exception using errcode = 'PT404', message = 'not_found', detail = pg_catalog.format('no plan %L for sale', plan);
    end if;
    if exists (select from public.subscriptions s
               where s.account_id = begin_checkout.account_id
                 and s.status in ('trialing', 'active', 'past_due', 'unpaid', 'paused')) then
      raise exception using errcode = 'PT409', message = 'already_subscribed',
        detail = 'this account already has a subscription',
        hint = 'change or cancel it in the billing portal';
    end if;
  else
    select c.* into chosen_pack from public.credit_packs c
    where c.key = begin_checkout.credit_pack and c.active and c.stripe_price_id is not null;
    if not found then
      raise exception using errcode = 'PT404', message = 'not_found', detail = pg_catalog.format('no credit pack %L for sale', credit_pack);
    end if;
  end if;

  select ap.limits into limits from private.account_plan(begin_checkout.account_id) ap;
  perform private.rate_limit('checkout', begin_checkout.account_id, limits);

  -- Reserve the account's customer row: concurrent checkouts all land on this one row.
  insert into public.billing_customers (account_id, status) values (begin_checkout.account_id, 'pending')
  on conflict on constraint billing_customers_pkey do nothing;
  select c.* into customer from public.billing_customers c where c.account_id = begin_checkout.account_id;
  select pr.email into profile_email from public.profiles pr where pr.id = uid;

  return pg_catalog.jsonb_build_object(
    'account_id', begin_checkout.account_id,
    'kind', case when plan is not null then 'plan' else 'credit_pack' end,
    'item', coalesce(chosen_plan.key, chosen_pack.key),
    'quantity', quantity,
    'mode', case when plan is not null then 'subscription' else 'payment' end,
    'stripe_price_id', coalesce(chosen_plan.stripe_price_id, chosen_pack.stripe_price_id),
    -- One trial per owner, across all the accounts they own: neither cancelling and
    -- subscribing again nor a new team starts another.
    'trial_days', case when private.trial_used(begin_checkout.account_id)
                         or exists (select from public.subscriptions s
                                    where s.account_id = begin_checkout.account_id and s.trial_start is not null)
                       then 0 else coalesce(chosen_plan.trial_days, 0) end,
    'stripe_customer_id', case when customer.status = 'active' then customer.stripe_customer_id end,
    'customer_idempotency_key', private.customer_idempotency_key(begin_checkout.account_id, customer.generation),
    'email', coalesce(customer.email, profile_email));
end
$$;
comment on function public.begin_checkout(uuid, text, text, integer) is
  'Used by the checkout edge function, as the signed-in user: checks billing.manage (42501), resolves the plan or pack for sale (PT404 not_found), refuses a second subscription (PT409 already_subscribed), applies the checkout rate limit (PT429), reserves the account''s billing customer row, and returns what the Stripe Checkout Session needs: {account_id, kind, item, quantity, mode, stripe_price_id, trial_days (0 when the account or its owner already had a trial), stripe_customer_id, customer_idempotency_key, email}.';

-- ---------------------------------------------------------------------------
-- Checkout Sessions we created
-- ---------------------------------------------------------------------------
create table private.checkout_sessions (
  session_id text primary key check (session_id ~ '^cs_[A-Za-z0-9_]+$'),
  account_id uuid not null,
  stripe_customer_id text,
  kind text not null check (kind in ('plan', 'credit_pack')),
  item text not null,
  quantity integer not null default 1 check (quantity > 0),
  created_by uuid,
  created_at timestamptz not null default now()
);
comment on table private.checkout_sessions is
  'Every Checkout Session the checkout function created, with the account it is for. Only these sessions link a Stripe customer and earn credits; a session named here is trusted for its account, whatever its client_reference_id says.';
create index checkout_sessions_account_id_idx on private.checkout_sessions (account_id);
alter table private.checkout_sessions enable row level security;
create policy "Clients never access checkout sessions" on private.checkout_sessions
  as restrictive for all to anon, authenticated using (false) with check (false);

-- Sessions created before this migration were never recorded: they keep the old rule (the
-- account they name), so an upgrade loses no credit of a session in flight. Stripe sets
-- `created`; nobody can backdate a new session.
insert into private.settings (key, value, description) values
  ('checkout_sessions_recorded_since', pg_catalog.to_jsonb(now()),
   'When the checkout function started recording its Checkout Sessions (set by the migration that introduced it). Unrecorded sessions created before it are trusted as before; later ones are flagged unverified_session.')
on conflict (key) do nothing;

create function private.record_checkout_session(
  session_id text, account_id uuid, customer_id text, kind text, item text, quantity integer default 1
) returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into private.checkout_sessions (session_id, account_id, stripe_customer_id, kind, item, quantity, created_by)
  values (record_checkout_session.session_id, record_checkout_session.account_id, record_checkout_session.customer_id,
          record_checkout_session.kind, record_checkout_session.item, record_checkout_session.quantity, auth.uid())
  on conflict on constraint checkout_sessions_pkey do nothing;
end
$$;
comment on function private.record_checkout_session(text, uuid, text, text, text, integer) is
  'Records a Checkout Session our checkout created for an account (the checkout function calls it, as the database owner, right after Stripe created the session; a server of yours that creates sessions calls it the same way). Idempotent.';

create or replace function private.stripe_checkout_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  event_type text := event ->> 'type';
  customer_id text := private.stripe_id(obj -> 'customer');
  metadata jsonb := case when pg_catalog.jsonb_typeof(obj -> 'metadata') = 'object' then obj -> 'metadata' else '{}'::jsonb end;
  recorded private.checkout_sessions;
  trusted boolean;
  account uuid;
  pack public.credit_packs;
  quantity integer;
  settlement text;
  expected bigint;
  -- What was actually paid, net of tax: discounts and coupons lower it, the subtotal does not
  -- see them. Tax is the customer's business with the tax authority, not credits.
  paid bigint := (obj ->> 'amount_total')::bigint - coalesce((obj -> 'total_details' ->> 'amount_tax')::bigint, 0);
  flag text;
begin
  select s.* into recorded from private.checkout_sessions s where s.session_id = obj ->> 'id';
  trusted := recorded.session_id is not null
    or coalesce(private.stripe_ts(obj -> 'created')
                < (private.setting('checkout_sessions_recorded_since') #>> '{}')::timestamptz, false);
  if recorded.session_id is not null then
    account := recorded.account_id;
  elsif trusted then
    -- A session from before sessions were recorded: the account it names, as it always was.
    account := private.stripe_account(array[obj ->> 'client_reference_id', metadata ->> 'account_id'], customer_id);
  else
    -- Not a session of ours (a Payment Link, a pricing table, another integration): anyone
    -- can put any account in client_reference_id. It is recorded on the customer's account,
    -- else the account it names, flagged; it links no customer and credits nothing.
    account := coalesce(private.stripe_account(array[]::text[], customer_id),
                        private.stripe_account(array[obj ->> 'client_reference_id', metadata ->> 'account_id'], null));
  end if;
  if account is null then
    return 'ignored';
  end if;
  if event_type = 'checkout.session.completed' and trusted then
    perform private.link_stripe_customer(account, customer_id, obj -> 'customer_details' ->> 'email',
      (obj ->> 'livemode')::boolean, event_type);
  end if;
  -- Subscriptions are handled by their own events and invoices.
  if obj ->> 'mode' <> 'payment' then
    return case when event_type = 'checkout.session.completed' then 'processed' else 'ignored' end;
  end if;

  settlement := case
    when event_type = 'checkout.session.async_payment_succeeded' then 'paid'
    when event_type = 'checkout.session.async_payment_failed' then 'failed'
    -- no_payment_required settles the session (nothing is left to collect); whether it earns
    -- credits is the amount check's call below: only when the pack costs nothing.
    when event_type = 'checkout.session.completed' and obj ->> 'payment_status' in ('paid', 'no_payment_required') then 'paid'
    when event_type = 'checkout.session.completed' then 'pending'
  end;
  if settlement is null then
    return 'ignored'; -- checkout.session.expired: nothing was paid
  end if;

  quantity := case when metadata ->> 'quantity' ~ '^[0-9]{1,4}$' then greatest((metadata ->> 'quantity')::integer, 1) else 1 end;
  select c.* into pack from public.credit_packs c
  where c.key = metadata ->> 'item' and coalesce(metadata ->> 'kind', 'credit_pack') = 'credit_pack';
  if not trusted then
    flag := pg_catalog.format('unverified_session: %s was not created by our checkout (client_reference_id %s); no credits',
      obj ->> 'id', coalesce(obj ->> 'client_reference_id', 'none'));
  elsif pack.key is null then
    flag := pg_catalog.format('unknown_item: %s', coalesce(metadata ->> 'item', 'none'));
  end if;
  if pack.key is not null then
    expected := pack.price_cents * quantity;
    flag := coalesce(flag, private.check_amount(expected, pack.currency, paid, obj ->> 'currency'));
    if flag is null and obj ->> 'payment_status' = 'no_payment_required' and expected <> 0 then
      flag := pg_catalog.format('no_payment_required: expected %s %s', expected, pack.currency);
    end if;
  end if;

  perform private.upsert_payment(account, 'credit_pack', settlement, obj ->> 'id', pg_catalog.jsonb_build_object(
    'item_key', coalesce(pack.key, metadata ->> 'item'), 'quantity', quantity,
    'amount', coalesce((obj ->> 'amount_total')::bigint, 0), 'currency', coalesce(obj ->> 'currency', pack.currency),
    'expected_amount', expected, 'flagged_reason', flag,
    'credits_due', case when flag is null then pack.credits * quantity else 0 end,
    'payment_intent_id', private.stripe_id(obj -> 'payment_intent'), 'customer_id', customer_id,
    'invoice_id', private.stripe_id(obj -> 'invoice'), 'livemode', obj -> 'livemode',
    'paid_at', private.stripe_ts(event -> 'created')));
  return 'processed';
end
$$;
comment on function private.stripe_checkout_event(jsonb, jsonb) is
  'checkout.session.*: for a session our checkout created (private.checkout_sessions), links the customer and, in payment mode, records the credit-pack payment (paid, pending until async_payment_succeeded, or failed), flagging an amount paid (amount_total less tax, after discounts) or currency that does not match the pack price x quantity, and a no_payment_required session for a pack that costs something (no credits then). Any other session is recorded on the customer''s (else the named) account, flagged unverified_session, with no credits and no customer link.';
