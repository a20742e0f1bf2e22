-- Notifications: in-app messages to users (SPEC §4.7).
--
-- What this migration creates:
--   public.notifications                 one row per message to one user; users read their own
--   public.mark_notifications_read(ids)  marks some (or all) of one's unread notifications read
--   private.notify_user(...)             THE way to notify one user
--   private.notify_account(...)          notifies every member of an account holding a permission
--   private.on_low_balance(...)          the credit engine's seam, now telling billing managers
--   triggers: invitation received (existing users), credits granted by a purchase
--
-- For billing: payment failed and trial ending are
--   private.notify_account(account_id, 'billing.manage', 'error' | 'warning', title, body, data)
-- Delivery beyond the table (e-mail, push) can subscribe to inserts (Realtime, webhooks).

-- ---------------------------------------------------------------------------
-- The table
-- ---------------------------------------------------------------------------
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  type text not null check (type in ('info', 'success', 'warning', 'error')),
  title text not null check (char_length(title) between 1 and 200),
  body text check (char_length(body) <= 2000),
  data jsonb not null default '{}'::jsonb check (jsonb_typeof(data) = 'object'),
  read_at timestamptz,
  created_at timestamptz not null default now()
);
comment on table public.notifications is
  'In-app notifications: low balance, invitations, purchased credits, failed payments, trial ending. Each user reads only their own and marks them read with mark_notifications_read().';
comment on column public.notifications.type is 'Severity for display: info, success, warning or error.';
comment on column public.notifications.data is 'Machine-readable context: kind (low_balance, invitation_received, credits_purchased, ...), account_id and the ids a client needs to link to.';
comment on column public.notifications.read_at is 'When the user marked it read; null while unread.';
create index notifications_user_created_idx on public.notifications (user_id, created_at desc);
create index notifications_user_unread_idx on public.notifications (user_id) where read_at is null;

alter table public.notifications enable row level security;
grant select on public.notifications to authenticated, service_role;
create policy "Users can read their own notifications" on public.notifications
  for select to authenticated
  using (user_id = (select auth.uid()));

-- ---------------------------------------------------------------------------
-- Writing notifications (billing and the triggers below)
-- ---------------------------------------------------------------------------
create or replace function private.notify_user(
  user_id uuid,
  type text,
  title text,
  body text default null,
  data jsonb default '{}'::jsonb
) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  notification_id uuid;
begin
  if notify_user.type is null or notify_user.type not in ('info', 'success', 'warning', 'error') then
    raise exception using errcode = '22023', message = 'invalid_input',
      detail = pg_catalog.format('notification type must be info, success, warning or error, not %L', notify_user.type);
  end if;
  if notify_user.data is not null and pg_catalog.jsonb_typeof(notify_user.data) <> 'object' then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'notification data must be a JSON object';
  end if;
  insert into public.notifications (user_id, type, title, body, data, created_at)
  values (notify_user.user_id, notify_user.type, left(btrim(notify_user.title), 200), left(notify_user.body, 2000),
          coalesce(notify_user.data, '{}'::jsonb), private.now())
  returning id into notification_id;
  return notification_id;
end
$$;
comment on function private.notify_user(uuid, text, text, text, jsonb) is
  'Creates one notification for a user and returns its id. type: info, success, warning or error (22023 invalid_input otherwise); title is trimmed and cut to 200 characters, body to 2000.';

create or replace function private.notify_account(
  account_id uuid,
  permission text,
  type text,
  title text,
  body text default null,
  data jsonb default '{}'::jsonb
) returns integer
language plpgsql
set search_path = ''
as $$
declare
  recipient uuid;
  sent integer := 0;
begin
  for recipient in
    select m.user_id
    from public.account_members m
    join public.role_permissions rp on rp.role = m.role and rp.permission = notify_account.permission
    where m.account_id = notify_account.account_id
    order by m.user_id
  loop
    perform private.notify_user(recipient, notify_account.type, notify_account.title, notify_account.body,
      pg_catalog.jsonb_build_object('account_id', notify_account.account_id) || coalesce(notify_account.data, '{}'::jsonb));
    sent := sent + 1;
  end loop;
  return sent;
end
$$;
comment on function private.notify_account(uuid, text, text, text, text, jsonb) is
  'Notifies every member of the account whose role holds the permission (e.g. billing.manage), adding account_id to data; returns how many were notified. Billing uses it for failed payments and trials ending.';

-- ---------------------------------------------------------------------------
-- Low balance (the credit engine's seam)
-- ---------------------------------------------------------------------------
create or replace function private.on_low_balance(account_id uuid, available bigint)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform private.notify_account(on_low_balance.account_id, 'billing.manage', 'warning',
    'Your credits are running low',
    pg_catalog.format('%s credits left. Buy a credit pack or upgrade your plan to keep going.', on_low_balance.available),
    pg_catalog.jsonb_build_object('kind', 'low_balance', 'available', on_low_balance.available,
                                  'threshold', private.low_balance_threshold()));
end
$$;
comment on function private.on_low_balance(uuid, bigint) is
  'Called by the credit engine in the transaction in which available credits fell below low_balance_threshold (once until they rise above it again): warns the account''s billing managers.';

-- ---------------------------------------------------------------------------
-- Invitation received (the invitee already has an account here)
-- ---------------------------------------------------------------------------
create or replace function private.notify_invitation_received()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitee uuid;
  team public.accounts;
begin
  select p.id into invitee from public.profiles p where lower(p.email) = new.email limit 1;
  if invitee is null then
    return null;
  end if;
  select a.* into team from public.accounts a where a.id = new.account_id;
  perform private.notify_user(invitee, 'info',
    pg_catalog.format('You are invited to join %s', team.name),
    pg_catalog.format('You were invited as %s. Open the invitation e-mail to accept; it expires at %s.',
                      new.role, pg_catalog.to_char(new.expires_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')),
    pg_catalog.jsonb_build_object('kind', 'invitation_received', 'account_id', new.account_id,
                                  'account_name', team.name, 'invitation_id', new.id, 'role', new.role,
                                  'invited_by', new.invited_by, 'expires_at', new.expires_at));
  return null;
end
$$;
comment on function private.notify_invitation_received() is
  'AFTER INSERT on account_invitations: notifies the invited person when a user with that email already exists (the token stays in the e-mail; it is never stored in a notification).';

create index profiles_email_lower_idx on public.profiles (lower(email));
comment on index public.profiles_email_lower_idx is 'Finds the user an invitation is addressed to.';

create trigger account_invitations_notify after insert on public.account_invitations
  for each row execute function private.notify_invitation_received();

-- ---------------------------------------------------------------------------
-- Credits granted by a purchase
-- ---------------------------------------------------------------------------
create or replace function private.notify_credits_purchased()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.notify_account(new.account_id, 'billing.manage', 'success',
    pg_catalog.format('%s credits added', new.delta),
    pg_catalog.format('Your purchase of %s credits went through. Balance: %s credits.', new.delta, new.balance_after),
    pg_catalog.jsonb_build_object('kind', 'credits_purchased', 'credits', new.delta, 'balance', new.balance_after,
                                  'payment_id', new.payment_id, 'grant_id', new.grant_id));
  return null;
end
$$;
comment on function private.notify_credits_purchased() is
  'AFTER INSERT on credit_ledger for purchases: tells the account''s billing managers their credits arrived.';

-- The WHEN clause keeps the hot path (consume, capture) free of any call.
create trigger credit_ledger_notify_purchase after insert on public.credit_ledger
  for each row when (new.reason = 'purchase')
  execute function private.notify_credits_purchased();

-- ---------------------------------------------------------------------------
-- The API
-- ---------------------------------------------------------------------------
create or replace function public.mark_notifications_read(ids uuid[] default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  marked integer;
begin
  update public.notifications n
     set read_at = private.now()
   where n.user_id = uid
     and n.read_at is null
     and (mark_notifications_read.ids is null or n.id = any (mark_notifications_read.ids));
  get diagnostics marked = row_count;
  return marked;
end
$$;
comment on function public.mark_notifications_read(uuid[]) is
  'Marks the caller''s unread notifications with these ids (all of them when ids is null) as read; returns how many changed. Other users'' ids are ignored.';

grant execute on function public.mark_notifications_read(uuid[]) to authenticated;
