-- API keys: how a customer's server meters usage without a user session (SPEC §4.7, §5).
--
-- A key looks like lb_<prefix>_<secret>: prefix is 12 hex characters (48 random bits) that
-- identify the key and may be shown in lists; secret is 64 hex characters (256 random
-- bits). The plaintext is returned once by create_api_key; only its sha256 is stored, in
-- private.api_key_hashes, out of every API role's reach.
--
-- What this migration creates:
--   public.api_keys                      the keys of an account (no secret, no hash)
--   private.api_key_hashes               sha256 of each key
--   public.create_api_key / revoke_api_key   the RPCs (api_keys.manage; audited)
--   private.authenticate_api_key(key)    account and scopes of a valid key, or PT401 invalid_api_key
--   private.consume_with_api_key(...)    what POST /functions/v1/usage runs: one call, one transaction
--   private.balance_with_api_key(key)    GET /functions/v1/usage/balance
--   private.usage_with_api_key(key, n)   GET /functions/v1/usage/events
--
-- Scopes: credits.consume (meter usage), credits.read (read the balance), usage.read (read
-- recent usage events). A key belongs to its account: it keeps working when its creator
-- leaves, and stops when it is revoked, expires or its account is deleted.

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------
create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 100),
  prefix text not null unique check (prefix ~ '^[0-9a-f]{12}$'),
  scopes text[] not null check (
    cardinality(scopes) between 1 and 3
    and scopes <@ array['credits.consume', 'credits.read', 'usage.read']::text[]),
  expires_at timestamptz,
  last_used_at timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  revoked_by uuid references auth.users (id) on delete set null
);
comment on table public.api_keys is
  'API keys of an account for server-to-server calls (the usage function). The key itself is shown once by create_api_key; only its sha256 is kept, in private.api_key_hashes. Members with api_keys.manage read and revoke them.';
comment on column public.api_keys.prefix is 'The public part of the key (lb_<prefix>_...): identifies it in lists and logs.';
comment on column public.api_keys.scopes is 'What the key may do: credits.consume (meter usage; includes reading the balance), credits.read, usage.read.';
comment on column public.api_keys.expires_at is 'After this the key is refused; null: it does not expire.';
comment on column public.api_keys.last_used_at is 'When the key was last accepted (updated at most once a minute).';
comment on column public.api_keys.revoked_at is 'When the key was revoked (revoke_api_key); a revoked key is refused.';
create index api_keys_account_idx on public.api_keys (account_id, created_at desc);
create index api_keys_created_by_idx on public.api_keys (created_by);
create index api_keys_revoked_by_idx on public.api_keys (revoked_by);

create table private.api_key_hashes (
  api_key_id uuid primary key references public.api_keys (id) on delete cascade,
  hash text not null unique check (hash ~ '^[0-9a-f]{64}$')
);
comment on table private.api_key_hashes is
  'sha256 (hex) of each API key, kept out of the Data API. The plaintext is returned once by create_api_key and never stored.';
alter table private.api_key_hashes enable row level security;
create policy "Clients never access API key hashes" on private.api_key_hashes
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- Audit: created and revoked (last_used_at changes are not events)
-- ---------------------------------------------------------------------------
create or replace function private.audit_api_keys()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.audit('api_key.created', 'api_key', new.id::text, new.account_id, null,
      pg_catalog.jsonb_build_object('name', new.name, 'prefix', new.prefix, 'scopes', new.scopes, 'expires_at', new.expires_at));
  else
    perform private.audit('api_key.revoked', 'api_key', new.id::text, new.account_id,
      pg_catalog.jsonb_build_object('revoked_at', old.revoked_at),
      pg_catalog.jsonb_build_object('revoked_at', new.revoked_at, 'revoked_by', new.revoked_by, 'prefix', new.prefix));
  end if;
  return null;
end
$$;
comment on function private.audit_api_keys() is 'AFTER INSERT / revocation on api_keys: api_key.created, api_key.revoked.';

create trigger api_keys_audit_insert after insert on public.api_keys
  for each row execute function private.audit_api_keys();
create trigger api_keys_audit_revoke after update of revoked_at on public.api_keys
  for each row when (old.revoked_at is null and new.revoked_at is not null)
  execute function private.audit_api_keys();

-- ---------------------------------------------------------------------------
-- Creating and revoking
-- ---------------------------------------------------------------------------
create or replace function public.create_api_key(
  account_id uuid,
  name text,
  scopes text[] default '{credits.consume}',
  expires_at timestamptz default null
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  clean_name text := btrim(create_api_key.name);
  clean_scopes text[];
  key_prefix text;
  secret text;
  plaintext text;
  key_id uuid;
begin
  if private.is_trusted_caller() then
    if not exists (select from public.accounts a where a.id = create_api_key.account_id) then
      raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such account';
    end if;
  else
    perform private.require_user();
    perform private.require_permission(create_api_key.account_id, 'api_keys.manage');
  end if;
  perform private.rate_limit('create_api_key', create_api_key.account_id);

  if clean_name is null or char_length(clean_name) not between 1 and 100 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'name must be 1 to 100 characters';
  end if;
  select array_agg(distinct s order by s) into clean_scopes from unnest(create_api_key.scopes) s;
  if clean_scopes is null or array_position(clean_scopes, null) is not null
     or not clean_scopes <@ array['credits.consume', 'credits.read', 'usage.read']::text[] then
    raise exception using errcode = '22023', message = 'invalid_scope',
      detail = 'scopes must be a non-empty subset of credits.consume, credits.read, usage.read';
  end if;
  if create_api_key.expires_at is not null and create_api_key.expires_at <= private.now() then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'expires_at must be in the future';
  end if;

  secret := pg_catalog.encode(extensions.gen_random_bytes(32), 'hex');
  loop
    -- 48 random bits: a collision is rare, and retried.
    key_prefix := pg_catalog.encode(extensions.gen_random_bytes(6), 'hex');
    insert into public.api_keys (account_id, name, prefix, scopes, expires_at, created_by, created_at)
    values (create_api_key.account_id, clean_name, key_prefix, clean_scopes, create_api_key.expires_at, auth.uid(), private.now())
    on conflict (prefix) do nothing
    returning id into key_id;
    exit when key_id is not null;
  end loop;
  plaintext := 'lb_' || key_prefix || '_' || secret;
  insert into private.api_key_hashes (api_key_id, hash)
  values (key_id, pg_catalog.encode(extensions.digest(plaintext, 'sha256'), 'hex'));

  return pg_catalog.jsonb_build_object('id', key_id, 'key', plaintext, 'prefix', key_prefix);
end
$$;
comment on function public.create_api_key(uuid, text, text[], timestamptz) is
  'Creates an API key for the account and returns {id, key, prefix}: the key (lb_<prefix>_<secret>, 256 random bits) is shown only here. Needs api_keys.manage (or a trusted server). Errors: 42501, PT404 not_found, 22023 invalid_input / invalid_scope, PT429 rate_limited (policy create_api_key, per user).';

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
  'Revokes an API key at once (safe to repeat). Needs api_keys.manage in its account (or a trusted server). Errors: PT404 not_found, 42501.';

grant execute on function public.create_api_key(uuid, text, text[], timestamptz) to authenticated, service_role;
grant execute on function public.revoke_api_key(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Authenticating a key (servers only: the usage function connects as postgres)
-- ---------------------------------------------------------------------------
create or replace function private.constant_time_equals(a bytea, b bytea)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
declare
  diff integer := 0;
  i integer;
begin
  if a is null or b is null or length(a) <> length(b) then
    return false;
  end if;
  -- Every byte is compared, whatever differs first.
  for i in 0 .. length(a) - 1 loop
    diff := diff | (get_byte(a, i) # get_byte(b, i));
  end loop;
  return diff = 0;
end
$$;
comment on function private.constant_time_equals(bytea, bytea) is
  'Compares two byte strings of equal length in time independent of where they differ.';

create or replace function private.authenticate_api_key(
  key text,
  out api_key_id uuid,
  out account_id uuid,
  out scopes text[]
)
language plpgsql
stable
set search_path = ''
as $$
declare
  parts text[] := regexp_match(coalesce(authenticate_api_key.key, ''), '^lb_([0-9a-f]{12})_[0-9a-f]{64}$');
  presented bytea := extensions.digest(coalesce(authenticate_api_key.key, ''), 'sha256');
  stored_hash text;
  revoked_at timestamptz;
  expires_at timestamptz;
begin
  if parts is not null then
    select k.id, k.account_id, k.scopes, k.revoked_at, k.expires_at, h.hash
      into api_key_id, account_id, scopes, revoked_at, expires_at, stored_hash
    from public.api_keys k
    join private.api_key_hashes h on h.api_key_id = k.id
    where k.prefix = parts[1];
  end if;
  -- Unknown, malformed, revoked and expired keys all go through the same comparison (with
  -- a dummy hash when there is none) and get the same error, so neither the answer nor its
  -- timing tells them apart.
  if not private.constant_time_equals(presented, pg_catalog.decode(coalesce(stored_hash, repeat('00', 32)), 'hex'))
     or stored_hash is null
     or revoked_at is not null
     or expires_at <= private.now() then
    raise exception using errcode = 'PT401', message = 'invalid_api_key',
      detail = 'the API key is unknown, revoked or expired';
  end if;
end
$$;
comment on function private.authenticate_api_key(text) is
  'The key''s id, account and scopes, or PT401 invalid_api_key, the same for a malformed, unknown, revoked or expired key; the hash is compared in constant time.';

create or replace function private.use_api_key(
  key text,
  scope text,
  out api_key_id uuid,
  out account_id uuid,
  out scopes text[]
)
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
begin
  select a.api_key_id, a.account_id, a.scopes into api_key_id, account_id, scopes
  from private.authenticate_api_key(use_api_key.key) a;
  -- A metering key may read the balance it draws from: credits.consume includes credits.read.
  if not (use_api_key.scope = any (scopes) or (use_api_key.scope = 'credits.read' and 'credits.consume' = any (scopes))) then
    raise exception using errcode = 'PT403', message = 'insufficient_scope',
      detail = pg_catalog.format('this API key lacks the %s scope', use_api_key.scope);
  end if;
  -- Usage by this key: usage_events.api_key_id and the api_key rate-limit scope read it.
  perform pg_catalog.set_config('ledgerbase.api_key_id', api_key_id::text, true);
  -- At most one write a minute per key, so a busy key does not queue on its row.
  update public.api_keys k set last_used_at = at
  where k.id = use_api_key.api_key_id and (k.last_used_at is null or k.last_used_at < at - interval '1 minute');
end
$$;
comment on function private.use_api_key(text, text) is
  'Authenticates a key (PT401 invalid_api_key), requires a scope (PT403 insufficient_scope), marks the transaction as acting with the key (ledgerbase.api_key_id) and records when it was last used (at most once a minute). Returns the key id, account and scopes.';

create or replace function private.consume_with_api_key(
  key text,
  action text,
  quantity integer default 1,
  idempotency_key text default null,
  metadata jsonb default '{}'::jsonb
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  caller_account uuid;
begin
  select k.account_id into caller_account from private.use_api_key(consume_with_api_key.key, 'credits.consume') k;
  return public.consume_credits(caller_account, consume_with_api_key.action, consume_with_api_key.quantity,
                                consume_with_api_key.idempotency_key, coalesce(consume_with_api_key.metadata, '{}'::jsonb));
end
$$;
comment on function private.consume_with_api_key(text, text, integer, text, jsonb) is
  'POST /functions/v1/usage: authenticates the key (PT401), requires credits.consume (PT403), then consume_credits for the key''s account in the same transaction, recording the key on the usage event. Same result and errors as consume_credits.';

create or replace function private.balance_with_api_key(key text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  caller_account uuid;
  wallet public.credit_balances;
begin
  select k.account_id into caller_account from private.use_api_key(balance_with_api_key.key, 'credits.read') k;
  select w.* into wallet from public.credit_balances w where w.account_id = caller_account;
  return pg_catalog.jsonb_build_object('account_id', caller_account, 'balance', coalesce(wallet.balance, 0),
    'held', coalesce(wallet.held, 0), 'available', coalesce(wallet.available, 0));
end
$$;
comment on function private.balance_with_api_key(text) is
  'GET /functions/v1/usage/balance: {account_id, balance, held, available} of the key''s account. Needs credits.read or credits.consume (PT403 insufficient_scope); PT401 for a bad key.';

create or replace function private.usage_with_api_key(key text, max_events integer default 50)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  caller_account uuid;
  events jsonb;
begin
  select k.account_id into caller_account from private.use_api_key(usage_with_api_key.key, 'usage.read') k;
  if max_events is null or max_events not between 1 and 100 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'limit must be between 1 and 100';
  end if;
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'id', e.id, 'action', e.action, 'quantity', e.quantity, 'credits_charged', e.credits_charged,
           'idempotency_key', e.idempotency_key, 'metadata', e.metadata, 'api_key_id', e.api_key_id,
           'created_at', e.created_at) order by e.created_at desc, e.id), '[]'::jsonb)
    into events
  from (select u.* from public.usage_events u
        where u.account_id = caller_account
        order by u.created_at desc, u.id
        limit max_events) e;
  return pg_catalog.jsonb_build_object('account_id', caller_account, 'events', events);
end
$$;
comment on function private.usage_with_api_key(text, integer) is
  'GET /functions/v1/usage/events: the account''s newest usage events (at most max_events, 1 to 100). Needs usage.read (PT403 insufficient_scope); PT401 for a bad key.';

-- ---------------------------------------------------------------------------
-- Row level security and grants
-- ---------------------------------------------------------------------------
alter table public.api_keys enable row level security;
grant select on public.api_keys to authenticated, service_role;
create policy "Members with api_keys.manage can read their account's API keys" on public.api_keys
  for select to authenticated
  using (account_id in (select public.user_account_ids('api_keys.manage')) or (select public.is_staff_admin()));
