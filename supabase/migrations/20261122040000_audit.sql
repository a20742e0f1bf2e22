-- Audit log: a tamper-evident record of security and money events (SPEC §4.6).
--
-- What this migration creates:
--   public.audit_log                  one row per audited event, sha256 hash chain (prev_hash -> hash)
--   private.audit_chain_head          the hash and id of the newest entry (detects a cut tail)
--   private.audit(...)                THE way to write an entry (triggers, RPCs, billing)
--   private.verify_audit_chain()      the first broken link, or null
--   triggers that audit memberships, roles, invitations, ownership, account deletion,
--   staff credit adjustments and catalog changes
--
-- The chain: hash = sha256(prev_hash || canonical JSON of the entry), where prev_hash is
-- the hash of the entry before (64 zeros for the first). A BEFORE INSERT trigger links
-- every new row under a transaction-scoped advisory lock and the head row's lock, so
-- concurrent writers form one chain. Editing, deleting or reordering an entry breaks the
-- chain from that entry on, and private.verify_audit_chain() points at it.
--
-- Append-only for every role: no API role holds UPDATE, DELETE or TRUNCATE, and a trigger
-- refuses them for everyone, the owner included. Disabling that trigger takes the table
-- owner (or a superuser), and the chain still shows what was changed: tamper-evident,
-- not tamper-proof.
--
-- Cost: the lock makes audit writes sequential, so only human, security and money events
-- are audited; consume_credits (the hot path) never is.
--
-- For billing (and any later migration): call
--   private.audit(action, entity, entity_id, account_id, before, after)
-- e.g. private.audit('subscription.updated', 'subscription', sub.id::text, sub.account_id,
--                    to_jsonb(old_sub), to_jsonb(new_sub)).
-- Actions are '<entity>.<verb>' in lower case.

-- ---------------------------------------------------------------------------
-- The table
-- ---------------------------------------------------------------------------
create table public.audit_log (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  actor_user_id uuid,
  actor_role text not null check (actor_role in ('anon', 'authenticated', 'service_role', 'system')),
  account_id uuid,
  action text not null check (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' and char_length(action) <= 100),
  entity text not null check (entity ~ '^[a-z][a-z0-9_]*$' and char_length(entity) <= 60),
  entity_id text check (char_length(entity_id) <= 200),
  before jsonb,
  after jsonb,
  ip text check (char_length(ip) <= 64),
  user_agent text check (char_length(user_agent) <= 512),
  prev_hash text not null check (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text not null unique check (hash ~ '^[0-9a-f]{64}$')
);
comment on table public.audit_log is
  'Who did what, when, from where: memberships, roles, invitations, API keys, staff credit adjustments, catalog, account deletion, subscriptions, payments, refunds and disputes. Append-only for every role; a sha256 hash chain makes any later change detectable (private.verify_audit_chain()). Members with audit.read read their account''s entries, staff admins all.';
comment on column public.audit_log.occurred_at is 'When the event happened (private.now()).';
comment on column public.audit_log.actor_user_id is 'The signed-in user who caused it (auth.uid()); null for servers and jobs. Not a foreign key: the log outlives users.';
comment on column public.audit_log.actor_role is 'authenticated (a user), service_role, anon, or system (a job, a trusted server, a migration).';
comment on column public.audit_log.account_id is 'The account concerned; null for operator-wide events (catalog). Not a foreign key: the log outlives accounts.';
comment on column public.audit_log.action is '<entity>.<verb>, e.g. member.added, api_key.revoked, account.deleted, plan.updated.';
comment on column public.audit_log.entity is 'The kind of thing acted on: member, invitation, account, api_key, credits, plan, credit_pack, billable_action, subscription, payment, ...';
comment on column public.audit_log.entity_id is 'Its identifier as text (a uuid, a catalog key, a Stripe id).';
comment on column public.audit_log.before is 'State before the change (for updates: only the fields that changed); null for creations.';
comment on column public.audit_log.after is 'State after the change (for updates: only the fields that changed); null for deletions.';
comment on column public.audit_log.ip is 'Client IP of the API request (first x-forwarded-for hop of request.headers), when there was one.';
comment on column public.audit_log.user_agent is 'User-Agent of the API request, when there was one.';
comment on column public.audit_log.prev_hash is 'The hash of the previous entry (64 zeros for the first).';
comment on column public.audit_log.hash is 'sha256(prev_hash || canonical JSON of this entry), hex.';

create index audit_log_account_idx on public.audit_log (account_id, id desc);
create index audit_log_actor_user_id_idx on public.audit_log (actor_user_id);
create index audit_log_entity_idx on public.audit_log (entity, entity_id);

create table private.audit_chain_head (
  singleton boolean primary key default true check (singleton),
  last_id bigint,
  last_hash text not null check (last_hash ~ '^[0-9a-f]{64}$')
);
comment on table private.audit_chain_head is
  'The newest audit entry''s id and hash. Its row lock serializes writers (with the advisory lock) and it lets verify_audit_chain() notice entries cut from the end of the log.';
alter table private.audit_chain_head enable row level security;
create policy "Clients never access the audit chain head" on private.audit_chain_head
  as restrictive for all to anon, authenticated using (false) with check (false);
insert into private.audit_chain_head (singleton, last_id, last_hash)
values (true, null, repeat('0', 64))
on conflict (singleton) do nothing;

-- ---------------------------------------------------------------------------
-- The chain
-- ---------------------------------------------------------------------------
create or replace function private.audit_entry_hash(entry public.audit_log)
returns text
language plpgsql
stable
set search_path = ''
as $$
  -- jsonb prints keys in a fixed order; the time is printed in UTC so the digest does not
  -- depend on the session's TimeZone.
begin
  return (
    select pg_catalog.encode(extensions.digest(entry.prev_hash || pg_catalog.jsonb_build_object(
      'id', entry.id,
      'occurred_at', pg_catalog.to_char(entry.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      'actor_user_id', entry.actor_user_id,
      'actor_role', entry.actor_role,
      'account_id', entry.account_id,
      'action', entry.action,
      'entity', entry.entity,
      'entity_id', entry.entity_id,
      'before', entry.before,
      'after', entry.after,
      'ip', entry.ip,
      'user_agent', entry.user_agent
    )::text, 'sha256'), 'hex')
  );
end
$$;
comment on function private.audit_entry_hash(public.audit_log) is
  'sha256 (hex) of prev_hash followed by the canonical JSON of the entry (every column but hash, time in UTC).';

create or replace function private.audit_link()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  head private.audit_chain_head;
begin
  -- One writer at a time: the advisory lock, then the head row (whose lock also makes a
  -- REPEATABLE READ writer fail rather than fork the chain).
  perform pg_catalog.pg_advisory_xact_lock(7400100100);
  select h.* into head from private.audit_chain_head h where h.singleton for update;
  new.prev_hash := head.last_hash;
  new.hash := private.audit_entry_hash(new);
  update private.audit_chain_head h set last_id = new.id, last_hash = new.hash where h.singleton;
  return new;
end
$$;
comment on function private.audit_link() is
  'BEFORE INSERT on audit_log: links the entry to the chain (prev_hash, hash) under the audit lock and moves the head.';

create trigger audit_log_link before insert on public.audit_log
  for each row execute function private.audit_link();

create or replace function private.refuse_audit_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = '42501', message = 'permission denied',
    detail = 'public.audit_log is append-only';
end
$$;
comment on function private.refuse_audit_change() is
  'Trigger: refuses UPDATE, DELETE and TRUNCATE on audit_log, for every role and in every context (no cascade exception).';

create trigger audit_log_append_only before update or delete on public.audit_log
  for each row execute function private.refuse_audit_change();
create trigger audit_log_no_truncate before truncate on public.audit_log
  for each statement execute function private.refuse_audit_change();

create or replace function private.verify_audit_chain()
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  broken bigint;
  head private.audit_chain_head;
  newest public.audit_log;
begin
  -- Every entry must point at the one before it and hash to what it says.
  select x.id into broken
  from (
    select a.id, a.prev_hash, a.hash,
           coalesce(lag(a.hash) over (order by a.id), repeat('0', 64)) as expected_prev,
           private.audit_entry_hash(a) as expected_hash
    from public.audit_log a
  ) x
  where x.prev_hash <> x.expected_prev or x.hash <> x.expected_hash
  order by x.id
  limit 1;
  if broken is not null then
    return broken;
  end if;

  -- And the newest entry must be the one the head remembers (entries cut from the end).
  select h.* into head from private.audit_chain_head h where h.singleton;
  select a.* into newest from public.audit_log a order by a.id desc limit 1;
  if newest.id is distinct from head.last_id or coalesce(newest.hash, repeat('0', 64)) <> head.last_hash then
    return coalesce(head.last_id, newest.id);
  end if;
  return null;
end
$$;
comment on function private.verify_audit_chain() is
  'Walks the audit chain. Returns the id of the first entry whose prev_hash or hash does not match (edited, deleted or reordered entries), or the id the head expects when entries were cut from the end; null when the chain is intact.';

-- ---------------------------------------------------------------------------
-- Writing entries
-- ---------------------------------------------------------------------------
create or replace function private.request_header(name text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> lower(request_header.name)
  );
end
$$;
comment on function private.request_header(text) is 'A header of the current API request (request.headers, lower-case names), or null outside a request.';

create or replace function private.audit(
  action text,
  entity text,
  entity_id text default null,
  account_id uuid default null,
  before jsonb default null,
  after jsonb default null
) returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.audit_log (occurred_at, actor_user_id, actor_role, account_id, action, entity, entity_id,
                                before, after, ip, user_agent, prev_hash, hash)
  values (private.now(), auth.uid(), private.actor_role(), audit.account_id, audit.action, audit.entity,
          left(audit.entity_id, 200), audit.before, audit.after,
          left(private.request_ip(), 64), left(private.request_header('user-agent'), 512),
          repeat('0', 64), repeat('0', 64));  -- placeholders: the audit_log_link trigger sets both
end
$$;
comment on function private.audit(text, text, text, uuid, jsonb, jsonb) is
  'Appends one audit entry: actor = auth.uid() and the API role (system when none), ip and user agent from request.headers, chained by the audit_log_link trigger. Called by the audit triggers, the RPCs and billing (subscriptions, payments, refunds, disputes). action is <entity>.<verb>.';

create or replace function private.jsonb_changes(old_row jsonb, new_row jsonb, ignored text[] default '{updated_at}', out before jsonb, out after jsonb)
language sql
immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_object_agg(k, old_row -> k), pg_catalog.jsonb_object_agg(k, new_row -> k)
  from pg_catalog.jsonb_object_keys(coalesce(old_row, '{}'::jsonb) || coalesce(new_row, '{}'::jsonb)) k
  where (old_row -> k) is distinct from (new_row -> k) and k <> all (ignored)
$$;
comment on function private.jsonb_changes(jsonb, jsonb, text[]) is
  'The fields that differ between two row images: before and after hold only those (null when nothing changed besides the ignored fields).';

-- ---------------------------------------------------------------------------
-- Audited tables
-- ---------------------------------------------------------------------------
-- The trigger functions are SECURITY DEFINER because some fire on direct writes by
-- signed-in users (staff admins editing the catalog), who cannot reach private.

-- Memberships of team accounts (personal accounts have one fixed owner).
create or replace function private.audit_account_members()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  team boolean;
begin
  select a.kind = 'team' into team from public.accounts a
  where a.id = case when tg_op = 'DELETE' then old.account_id else new.account_id end;
  -- Not found: the account is being deleted, which is audited once as account.deleted.
  if team is not true then
    return null;
  end if;
  if tg_op = 'INSERT' then
    perform private.audit('member.added', 'member', new.user_id::text, new.account_id,
      null, pg_catalog.jsonb_build_object('user_id', new.user_id, 'role', new.role));
  elsif tg_op = 'UPDATE' then
    perform private.audit('member.role_changed', 'member', new.user_id::text, new.account_id,
      pg_catalog.jsonb_build_object('role', old.role), pg_catalog.jsonb_build_object('role', new.role));
  else
    perform private.audit('member.removed', 'member', old.user_id::text, old.account_id,
      pg_catalog.jsonb_build_object('user_id', old.user_id, 'role', old.role), null);
  end if;
  return null;
end
$$;
comment on function private.audit_account_members() is
  'AFTER INSERT/UPDATE OF role/DELETE on account_members: member.added, member.role_changed, member.removed (team accounts; not when the account itself is being deleted).';

create trigger account_members_audit_insert after insert on public.account_members
  for each row execute function private.audit_account_members();
create trigger account_members_audit_update after update of role on public.account_members
  for each row when (old.role is distinct from new.role) execute function private.audit_account_members();
create trigger account_members_audit_delete after delete on public.account_members
  for each row execute function private.audit_account_members();

-- Invitations: sent, accepted, revoked (or replaced by a new one).
create or replace function private.audit_account_invitations()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.audit('invitation.created', 'invitation', new.id::text, new.account_id, null,
      pg_catalog.jsonb_build_object('email', new.email, 'role', new.role, 'expires_at', new.expires_at));
  elsif tg_op = 'UPDATE' then
    perform private.audit('invitation.accepted', 'invitation', new.id::text, new.account_id,
      pg_catalog.jsonb_build_object('accepted_at', old.accepted_at),
      pg_catalog.jsonb_build_object('accepted_at', new.accepted_at, 'accepted_by', new.accepted_by, 'role', new.role));
  elsif old.accepted_at is null and exists (select from public.accounts a where a.id = old.account_id) then
    perform private.audit('invitation.revoked', 'invitation', old.id::text, old.account_id,
      pg_catalog.jsonb_build_object('email', old.email, 'role', old.role, 'expires_at', old.expires_at), null);
  end if;
  return null;
end
$$;
comment on function private.audit_account_invitations() is
  'AFTER INSERT/UPDATE/DELETE on account_invitations: invitation.created, invitation.accepted, invitation.revoked (a pending one deleted while its account lives).';

create trigger account_invitations_audit_insert after insert on public.account_invitations
  for each row execute function private.audit_account_invitations();
create trigger account_invitations_audit_accept after update of accepted_at on public.account_invitations
  for each row when (old.accepted_at is null and new.accepted_at is not null)
  execute function private.audit_account_invitations();
create trigger account_invitations_audit_delete after delete on public.account_invitations
  for each row execute function private.audit_account_invitations();

-- Accounts: ownership, renames, deletion.
create or replace function private.audit_accounts()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  changes record;
begin
  if tg_op = 'DELETE' then
    perform private.audit('account.deleted', 'account', old.id::text, old.id,
      pg_catalog.jsonb_build_object('kind', old.kind, 'name', old.name, 'slug', old.slug,
                                    'primary_owner', old.primary_owner), null);
    return null;
  end if;
  if old.primary_owner is distinct from new.primary_owner then
    perform private.audit('account.ownership_transferred', 'account', new.id::text, new.id,
      pg_catalog.jsonb_build_object('primary_owner', old.primary_owner),
      pg_catalog.jsonb_build_object('primary_owner', new.primary_owner));
  end if;
  if old.name is distinct from new.name or old.slug is distinct from new.slug then
    select * into changes from private.jsonb_changes(
      pg_catalog.jsonb_build_object('name', old.name, 'slug', old.slug),
      pg_catalog.jsonb_build_object('name', new.name, 'slug', new.slug));
    perform private.audit('account.updated', 'account', new.id::text, new.id, changes.before, changes.after);
  end if;
  return null;
end
$$;
comment on function private.audit_accounts() is
  'AFTER UPDATE/DELETE on accounts: account.ownership_transferred, account.updated (name, slug), account.deleted (teams by delete_account, personal accounts with their user).';

create trigger accounts_audit_update after update of name, slug, primary_owner on public.accounts
  for each row execute function private.audit_accounts();
create trigger accounts_audit_delete after delete on public.accounts
  for each row execute function private.audit_accounts();

-- Staff credit adjustments (admin_adjust_credits): an admin grant or an admin_adjust debit.
create or replace function private.audit_credit_adjustment()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.audit('credits.adjusted', 'credits', new.id::text, new.account_id,
    pg_catalog.jsonb_build_object('balance', new.balance_after - new.delta,
                                  'available', new.available_after - new.delta),
    pg_catalog.jsonb_build_object('balance', new.balance_after, 'available', new.available_after,
                                  'delta', new.delta, 'reason', new.metadata ->> 'reason',
                                  'idempotency_key', new.idempotency_key));
  return null;
end
$$;
comment on function private.audit_credit_adjustment() is
  'AFTER INSERT on credit_ledger for staff adjustments (reason admin or admin_adjust): credits.adjusted with the balance before and after, the delta and the stated reason. entity_id is the ledger entry id.';

-- The WHEN clause keeps the hot path (consume, capture) free of any call.
create trigger credit_ledger_audit_adjustment after insert on public.credit_ledger
  for each row when (new.reason in ('admin', 'admin_adjust'))
  execute function private.audit_credit_adjustment();

-- The catalog: plans, credit packs, billable actions.
create or replace function private.audit_catalog()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  entity text := case tg_table_name when 'plans' then 'plan' when 'credit_packs' then 'credit_pack' else 'billable_action' end;
  changes record;
begin
  if tg_op = 'INSERT' then
    perform private.audit(entity || '.created', entity, new.key, null, null, pg_catalog.to_jsonb(new) - 'created_at' - 'updated_at');
  elsif tg_op = 'UPDATE' then
    select * into changes from private.jsonb_changes(pg_catalog.to_jsonb(old), pg_catalog.to_jsonb(new));
    if changes.after is not null then
      perform private.audit(entity || '.updated', entity, new.key, null, changes.before, changes.after);
    end if;
  else
    perform private.audit(entity || '.deleted', entity, old.key, null, pg_catalog.to_jsonb(old) - 'created_at' - 'updated_at', null);
  end if;
  return null;
end
$$;
comment on function private.audit_catalog() is
  'AFTER INSERT/UPDATE/DELETE on plans, credit_packs, billable_actions: <entity>.created / .updated (changed fields only; nothing when nothing changed) / .deleted.';

create trigger plans_audit after insert or update or delete on public.plans
  for each row execute function private.audit_catalog();
create trigger credit_packs_audit after insert or update or delete on public.credit_packs
  for each row execute function private.audit_catalog();
create trigger billable_actions_audit after insert or update or delete on public.billable_actions
  for each row execute function private.audit_catalog();

-- ---------------------------------------------------------------------------
-- Row level security and grants
-- ---------------------------------------------------------------------------
alter table public.audit_log enable row level security;

revoke all on public.audit_log from anon, authenticated, service_role;
grant select on public.audit_log to authenticated, service_role;

create policy "Members with audit.read can read their account's audit log and staff admins all of it" on public.audit_log
  for select to authenticated
  using (account_id in (select public.user_account_ids('audit.read')) or (select public.is_staff_admin()));
