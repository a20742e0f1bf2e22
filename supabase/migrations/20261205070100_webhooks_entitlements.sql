-- Outgoing webhooks (Standard Webhooks), live balances over Realtime, and entitlements.
--
--   webhooks.manage                    new permission (owners, admins)
--   public.webhook_endpoints           an account's endpoints (secret kept in private.webhook_secrets)
--   public.webhook_deliveries          one row per event per endpoint: the delivery log
--   create_webhook_endpoint / update_webhook_endpoint / delete_webhook_endpoint /
--   rotate_webhook_secret / redeliver_webhook      the RPCs
--   private.emit_event(account_id, type, data)     enqueues a delivery per matching endpoint
--   private.webhook_request(...)       the signed request the dispatcher sends
--   private.refused_webhook_address()  the SSRF rule: which addresses we never call
--   emitters: on_low_balance, credit_grants, subscriptions, payments, account_members, api_keys
--   supabase_realtime publication: credit_balances, notifications
--   has_feature(account_id, feature), account_entitlements.enabled_features

-- ---------------------------------------------------------------------------
-- Settings, permission, job kind
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('webhook_allow_loopback', 'false',
   'When true, webhook endpoints may be on loopback addresses (127.0.0.0/8, ::1, localhost) and use http there: for local development and tests only. Private, link-local, CGNAT and metadata addresses stay refused.'),
  ('webhook_timeout_seconds', '10', 'How long the dispatcher waits for a webhook endpoint to answer before the attempt counts as failed.')
on conflict (key) do nothing;

insert into public.permissions (key, description) values
  ('webhooks.manage', 'Create, change and delete webhook endpoints and read their delivery log.')
on conflict (key) do nothing;
insert into public.role_permissions (role, permission) values
  ('owner', 'webhooks.manage'), ('admin', 'webhooks.manage')
on conflict do nothing;

insert into private.rate_limit_policies (name, capacity, refill_per_second, scope, description) values
  ('manage_webhooks', 20, 0.05, 'user', 'Webhook endpoints created and deliveries re-sent by one user.')
on conflict (name) do nothing;

insert into private.job_kinds (kind, description, sql_function, max_attempts, base_delay, max_delay, give_up_after, lease, on_finish)
values ('webhook.deliver', 'Delivers one webhook_deliveries row to its endpoint (the dispatcher''s webhook runner).',
        null, 100, interval '5 seconds', interval '6 hours', interval '3 days', interval '2 minutes',
        'private.webhook_job_finished')
on conflict (kind) do nothing;

-- ---------------------------------------------------------------------------
-- Event types
-- ---------------------------------------------------------------------------
create or replace function private.webhook_event_types()
returns text[]
language sql
immutable
set search_path = ''
as $$
  select array[
    'credits.low', 'credits.granted', 'credits.auto_topup.succeeded', 'credits.auto_topup.failed',
    'subscription.created', 'subscription.updated', 'subscription.canceled',
    'payment.succeeded', 'payment.failed', 'payment.refunded',
    'member.added', 'member.removed', 'api_key.created', 'api_key.revoked'
  ]::text[]
$$;
comment on function private.webhook_event_types() is
  'The event types an endpoint can subscribe to (event_types may also be {"*"} for all of them).';

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------
create table public.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  url text not null check (char_length(url) between 1 and 2048),
  description text check (char_length(description) <= 500),
  event_types text[] not null check (cardinality(event_types) between 1 and 50),
  active boolean not null default true,
  disabled_reason text,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.webhook_endpoints is
  'Where an account''s systems hear about billing events. Written through create/update/delete_webhook_endpoint; readable with webhooks.manage. The signing secret is shown once and never stored here.';
comment on column public.webhook_endpoints.event_types is 'The event types delivered to this endpoint, or {"*"} for all.';
comment on column public.webhook_endpoints.disabled_reason is
  'Why the endpoint stopped receiving (e.g. deliveries failed for 3 days); cleared when it is re-enabled.';
create index webhook_endpoints_account_id_idx on public.webhook_endpoints (account_id) where active;
create index webhook_endpoints_account_all_idx on public.webhook_endpoints (account_id);
create index webhook_endpoints_created_by_idx on public.webhook_endpoints (created_by);
create trigger webhook_endpoints_set_updated_at
  before update on public.webhook_endpoints
  for each row execute function private.set_updated_at();

create table public.webhook_deliveries (
  id uuid primary key default gen_random_uuid(),
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  account_id uuid not null references public.accounts (id) on delete cascade,
  event_id text not null check (event_id ~ '^evt_[0-9a-f]{32}$'),
  type text not null,
  payload jsonb not null,
  attempt integer not null default 0 check (attempt >= 0),
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed', 'canceled')),
  response_status integer,
  response_body text,
  duration_ms integer,
  last_error text,
  next_attempt_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz not null default now()
);
comment on table public.webhook_deliveries is
  'The delivery log: one row per event per endpoint (a redelivery adds a row with the same event_id). Readable with webhooks.manage; written only by the dispatcher''s SQL functions.';
comment on column public.webhook_deliveries.event_id is 'The webhook-id header: the same on every attempt and redelivery, so receivers can drop duplicates.';
comment on column public.webhook_deliveries.payload is 'The JSON body {type, timestamp, data}, sent and signed as payload::text.';
comment on column public.webhook_deliveries.status is
  'pending (waiting for its next attempt), delivered (a 2xx answer), failed (retries gave up), canceled (the endpoint was disabled or deleted first).';
comment on column public.webhook_deliveries.response_body is 'The first 1,000 characters of the endpoint''s last answer.';
create index webhook_deliveries_endpoint_id_idx on public.webhook_deliveries (endpoint_id, created_at desc);
create index webhook_deliveries_account_id_idx on public.webhook_deliveries (account_id, created_at desc);

create table private.webhook_secrets (
  id bigint generated always as identity primary key,
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  secret bytea not null check (octet_length(secret) between 24 and 64),
  created_at timestamptz not null,
  expires_at timestamptz
);
comment on table private.webhook_secrets is
  'Signing keys of the endpoints (the bytes after whsec_, base64-decoded). Never readable by clients. A rotated-out key keeps signing until expires_at (24 h).';
create index webhook_secrets_endpoint_id_idx on private.webhook_secrets (endpoint_id);
alter table private.webhook_secrets enable row level security;
create policy "Clients never access webhook secrets" on private.webhook_secrets
  as restrictive for all to anon, authenticated using (false) with check (false);

alter table public.webhook_endpoints enable row level security;
alter table public.webhook_deliveries enable row level security;
grant select on public.webhook_endpoints, public.webhook_deliveries to authenticated, service_role;
create policy "Members with webhooks.manage can read their account's webhook endpoints" on public.webhook_endpoints
  for select to authenticated
  using (account_id in (select public.user_account_ids('webhooks.manage')));
create policy "Members with webhooks.manage can read their account's webhook deliveries" on public.webhook_deliveries
  for select to authenticated
  using (account_id in (select public.user_account_ids('webhooks.manage')));

-- ---------------------------------------------------------------------------
-- The SSRF rule
-- ---------------------------------------------------------------------------
create or replace function private.refused_webhook_address(address inet, allow_loopback boolean default false)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  a inet := host(address)::inet;
begin
  if a is null then
    return 'not an address';
  end if;
  if a <<= '::ffff:0:0/96'::inet then
    -- IPv4-mapped IPv6 reaches the IPv4 address it embeds: judge that one.
    a := pg_catalog.split_part(host(a), ':', 4)::inet;
  end if;
  if a <<= '127.0.0.0/8'::inet or a = '::1'::inet then
    return case when allow_loopback then null else 'loopback' end;
  end if;
  return case
    when a <<= '10.0.0.0/8' or a <<= '172.16.0.0/12' or a <<= '192.168.0.0/16' or a <<= 'fc00::/7' then 'private'
    when a <<= '169.254.0.0/16' or a <<= 'fe80::/10' then 'link-local (cloud metadata)'
    when a <<= '100.64.0.0/10' then 'carrier-grade NAT'
    when a <<= '0.0.0.0/8' or a = '::'::inet or a <<= '192.0.0.0/24' or a <<= '192.0.2.0/24'
      or a <<= '198.18.0.0/15' or a <<= '198.51.100.0/24' or a <<= '203.0.113.0/24'
      or a <<= '224.0.0.0/4' or a <<= '240.0.0.0/4' or a <<= 'ff00::/8' or a <<= '2001:db8::/32'
      or a <<= '100::/64' or a <<= '64:ff9b:1::/48' then 'reserved'
    else null
  end;
exception when invalid_text_representation then
  return 'not an address';
end
$$;
comment on function private.refused_webhook_address(inet, boolean) is
  'Why webhooks may never be sent to this address (loopback, private, link-local / metadata, carrier-grade NAT, reserved), or null when it is a public address. IPv4-mapped IPv6 is judged by the IPv4 address inside. Loopback passes when allow_loopback.';

create or replace function private.refused_webhook_addresses(addresses text[])
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  allow boolean := coalesce((private.setting('webhook_allow_loopback') #>> '{}')::boolean, false);
  address text;
  reason text;
begin
  if addresses is null or cardinality(addresses) = 0 then
    return 'the host has no address';
  end if;
  foreach address in array addresses loop
    begin
      reason := private.refused_webhook_address(address::inet, allow);
    exception when invalid_text_representation then
      reason := 'not an address';
    end;
    if reason is not null then
      return pg_catalog.format('%s resolves to %s (%s)', 'the host', address, reason);
    end if;
  end loop;
  return null;
end
$$;
comment on function private.refused_webhook_addresses(text[]) is
  'The dispatcher''s SSRF check: null when every address a webhook host resolved to may be called, else why not (one refused address refuses the host).';

create or replace function private.webhook_url_host(url text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  m text[] := pg_catalog.regexp_match(url, '^https?://(\[[0-9a-fA-F:.]+\]|[^/?#:@\[\]\s]+)(:[0-9]{1,5})?([/?#][^\s]*)?$');
begin
  return lower(m[1]);
end
$$;
comment on function private.webhook_url_host(text) is 'The host of an http(s) URL without user info ([...] kept around IPv6 literals), or null when the URL is malformed.';

create or replace function private.check_webhook_url(url text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  clean text := btrim(url);
  host text := private.webhook_url_host(clean);
  allow boolean := coalesce((private.setting('webhook_allow_loopback') #>> '{}')::boolean, false);
  literal inet;
  reason text;
  loopback boolean;
begin
  if clean is null or char_length(clean) > 2048 or host is null then
    raise exception using errcode = '22023', message = 'invalid_url',
      detail = 'url must be an absolute https URL such as https://example.com/webhooks (no user info, no spaces)';
  end if;
  begin
    literal := pg_catalog.btrim(host, '[]')::inet;
  exception when invalid_text_representation then
    literal := null;
  end;
  loopback := host in ('localhost', 'localhost.') or host like '%.localhost'
    or (literal is not null and private.refused_webhook_address(literal, false) = 'loopback');
  if literal is not null then
    reason := private.refused_webhook_address(literal, allow);
  elsif loopback and not allow then
    reason := 'loopback';
  end if;
  if reason is not null then
    raise exception using errcode = '22023', message = 'invalid_url',
      detail = pg_catalog.format('webhooks are never sent to %s addresses', reason),
      hint = case when reason = 'loopback' then 'for local development set private.settings webhook_allow_loopback to true'
                  else 'use the public https URL of your endpoint' end;
  end if;
  if clean !~* '^https://' and not (loopback and allow) then
    raise exception using errcode = '22023', message = 'invalid_url', detail = 'url must use https';
  end if;
  return clean;
end
$$;
comment on function private.check_webhook_url(text) is
  'Validates an endpoint URL and returns it trimmed: https only (http only to loopback while webhook_allow_loopback), no IP literal that private.refused_webhook_address refuses. Host names are resolved and checked again at every delivery. Raises 22023 invalid_url.';

create or replace function private.check_webhook_event_types(event_types text[])
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  clean text[];
  unknown text;
begin
  select array_agg(distinct btrim(t) order by btrim(t)) into clean from unnest(event_types) t;
  if clean is null or array_position(clean, null) is not null or cardinality(clean) > 50 then
    raise exception using errcode = '22023', message = 'invalid_event_type',
      detail = 'event_types must be a non-empty list of event types, or {"*"} for all';
  end if;
  select t into unknown from unnest(clean) t where t <> '*' and t <> all (private.webhook_event_types()) limit 1;
  if unknown is not null then
    raise exception using errcode = '22023', message = 'invalid_event_type',
      detail = pg_catalog.format('unknown event type %L; known: %s', unknown, array_to_string(private.webhook_event_types(), ', '));
  end if;
  return clean;
end
$$;
comment on function private.check_webhook_event_types(text[]) is 'Deduplicated, sorted event types, each known or "*"; raises 22023 invalid_event_type otherwise.';

-- ---------------------------------------------------------------------------
-- Secrets
-- ---------------------------------------------------------------------------
create or replace function private.new_webhook_secret(endpoint_id uuid)
returns text
language plpgsql
set search_path = ''
as $$
declare
  bytes bytea := extensions.gen_random_bytes(32);
begin
  insert into private.webhook_secrets (endpoint_id, secret, created_at)
  values (new_webhook_secret.endpoint_id, bytes, private.now());
  return 'whsec_' || pg_catalog.encode(bytes, 'base64');
end
$$;
comment on function private.new_webhook_secret(uuid) is
  'Creates a signing key for the endpoint and returns it once, as Standard Webhooks writes it: whsec_ + base64 of 32 random bytes.';

-- ---------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------
create or replace function private.authorize_webhooks(account_id uuid)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if private.is_trusted_caller() then
    if not exists (select from public.accounts a where a.id = authorize_webhooks.account_id) then
      raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such account';
    end if;
  else
    perform private.require_user();
    perform private.require_permission(authorize_webhooks.account_id, 'webhooks.manage');
  end if;
end
$$;
comment on function private.authorize_webhooks(uuid) is 'Raises unless the caller may manage the account''s webhooks (webhooks.manage, or a trusted server).';

create or replace function private.find_webhook_endpoint(id uuid)
returns public.webhook_endpoints
language plpgsql
set search_path = ''
as $$
declare
  e public.webhook_endpoints;
begin
  select * into e from public.webhook_endpoints w where w.id = find_webhook_endpoint.id for update;
  -- A stranger learns nothing: unknown and not-yours answer alike.
  if e.id is null or (not private.is_trusted_caller() and not public.has_permission(e.account_id, 'webhooks.manage')) then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no webhook endpoint with this id';
  end if;
  return e;
end
$$;
comment on function private.find_webhook_endpoint(uuid) is 'The endpoint, locked, if the caller may manage it; PT404 not_found otherwise.';

create or replace function public.create_webhook_endpoint(
  account_id uuid,
  url text,
  event_types text[],
  description text default null
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  e public.webhook_endpoints;
begin
  perform private.authorize_webhooks(create_webhook_endpoint.account_id);
  perform private.rate_limit('manage_webhooks', create_webhook_endpoint.account_id);
  if (select count(*) from public.webhook_endpoints w where w.account_id = create_webhook_endpoint.account_id) >= 20 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'an account has at most 20 webhook endpoints';
  end if;
  if create_webhook_endpoint.description is not null and char_length(create_webhook_endpoint.description) > 500 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'description must be at most 500 characters';
  end if;
  insert into public.webhook_endpoints (account_id, url, description, event_types, created_by, created_at, updated_at)
  values (create_webhook_endpoint.account_id, private.check_webhook_url(create_webhook_endpoint.url),
          create_webhook_endpoint.description, private.check_webhook_event_types(create_webhook_endpoint.event_types),
          auth.uid(), private.now(), private.now())
  returning * into e;
  return pg_catalog.to_jsonb(e) || pg_catalog.jsonb_build_object('secret', private.new_webhook_secret(e.id));
end
$$;
comment on function public.create_webhook_endpoint(uuid, text, text[], text) is
  'Creates a webhook endpoint and returns it with its signing secret (whsec_...), shown only here. Needs webhooks.manage. Errors: 42501, PT404 not_found, 22023 invalid_url / invalid_event_type / invalid_input, PT429 rate_limited.';

create or replace function public.update_webhook_endpoint(
  id uuid,
  url text default null,
  event_types text[] default null,
  description text default null,
  active boolean default null
) returns public.webhook_endpoints
language plpgsql
security definer
set search_path = ''
as $$
declare
  e public.webhook_endpoints := private.find_webhook_endpoint(update_webhook_endpoint.id);
begin
  if update_webhook_endpoint.description is not null and char_length(update_webhook_endpoint.description) > 500 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'description must be at most 500 characters';
  end if;
  update public.webhook_endpoints w
  set url = case when update_webhook_endpoint.url is null then w.url
                 else private.check_webhook_url(update_webhook_endpoint.url) end,
      event_types = case when update_webhook_endpoint.event_types is null then w.event_types
                         else private.check_webhook_event_types(update_webhook_endpoint.event_types) end,
      description = coalesce(update_webhook_endpoint.description, w.description),
      active = coalesce(update_webhook_endpoint.active, w.active),
      disabled_reason = case
        when update_webhook_endpoint.active is true then null
        when update_webhook_endpoint.active is false then 'disabled by a member'
        else w.disabled_reason end
  where w.id = e.id
  returning * into e;
  return e;
end
$$;
comment on function public.update_webhook_endpoint(uuid, text, text[], text, boolean) is
  'Changes an endpoint''s url, event types, description or active flag (null leaves a field as it is); active => true re-enables a disabled endpoint and clears disabled_reason. Needs webhooks.manage. Errors: PT404 not_found, 22023 invalid_url / invalid_event_type / invalid_input.';

create or replace function public.delete_webhook_endpoint(id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  e public.webhook_endpoints := private.find_webhook_endpoint(delete_webhook_endpoint.id);
begin
  delete from public.webhook_endpoints w where w.id = e.id;
end
$$;
comment on function public.delete_webhook_endpoint(uuid) is
  'Deletes an endpoint with its secrets and delivery log; deliveries still queued are dropped. Needs webhooks.manage. Errors: PT404 not_found.';

create or replace function public.rotate_webhook_secret(id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  e public.webhook_endpoints := private.find_webhook_endpoint(rotate_webhook_secret.id);
  at timestamptz := private.now();
  overlap_until timestamptz := at + interval '24 hours';
begin
  -- Keys still signing keep signing for 24 h (never longer than they already would).
  update private.webhook_secrets s
  set expires_at = least(coalesce(s.expires_at, overlap_until), overlap_until)
  where s.endpoint_id = e.id and (s.expires_at is null or s.expires_at > at);
  delete from private.webhook_secrets s where s.endpoint_id = e.id and s.expires_at <= at;
  return pg_catalog.jsonb_build_object('id', e.id, 'secret', private.new_webhook_secret(e.id),
                                       'previous_secret_expires_at', overlap_until);
end
$$;
comment on function public.rotate_webhook_secret(uuid) is
  'Creates a new signing secret and returns it once ({id, secret, previous_secret_expires_at}); the previous one keeps signing alongside it for 24 h, so deliveries carry two v1 signatures meanwhile. Needs webhooks.manage. Errors: PT404 not_found.';

create or replace function public.redeliver_webhook(delivery_id uuid)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  d public.webhook_deliveries;
  e public.webhook_endpoints;
  new_id uuid;
begin
  select * into d from public.webhook_deliveries w where w.id = redeliver_webhook.delivery_id;
  if d.id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no webhook delivery with this id';
  end if;
  e := private.find_webhook_endpoint(d.endpoint_id);
  if not e.active then
    raise exception using errcode = 'PT409', message = 'endpoint_disabled',
      detail = pg_catalog.format('the endpoint is disabled: %s', coalesce(e.disabled_reason, 'no reason recorded')),
      hint = 'enable it first with update_webhook_endpoint(id => ..., active => true)';
  end if;
  perform private.rate_limit('manage_webhooks', d.account_id);
  insert into public.webhook_deliveries (endpoint_id, account_id, event_id, type, payload, next_attempt_at, created_at)
  values (d.endpoint_id, d.account_id, d.event_id, d.type, d.payload, private.now(), private.now())
  returning id into new_id;
  perform private.enqueue_job('webhook.deliver', pg_catalog.jsonb_build_object('delivery_id', new_id), 'webhook:' || new_id);
  return new_id;
end
$$;
comment on function public.redeliver_webhook(uuid) is
  'Sends a delivery''s event to its endpoint again as a new delivery (same event_id, so same webhook-id) and returns the new delivery id. Needs webhooks.manage. Errors: PT404 not_found, PT409 endpoint_disabled, PT429 rate_limited.';

revoke all on function public.create_webhook_endpoint(uuid, text, text[], text) from public;
revoke all on function public.update_webhook_endpoint(uuid, text, text[], text, boolean) from public;
revoke all on function public.delete_webhook_endpoint(uuid) from public;
revoke all on function public.rotate_webhook_secret(uuid) from public;
revoke all on function public.redeliver_webhook(uuid) from public;
grant execute on function public.create_webhook_endpoint(uuid, text, text[], text) to authenticated, service_role;
grant execute on function public.update_webhook_endpoint(uuid, text, text[], text, boolean) to authenticated, service_role;
grant execute on function public.delete_webhook_endpoint(uuid) to authenticated, service_role;
grant execute on function public.rotate_webhook_secret(uuid) to authenticated, service_role;
grant execute on function public.redeliver_webhook(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Emitting events
-- ---------------------------------------------------------------------------
create or replace function private.emit_event(account_id uuid, type text, data jsonb)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  event_id text;
  body jsonb;
  e record;
  new_id uuid;
  sent integer := 0;
begin
  if emit_event.type is null or emit_event.type <> all (private.webhook_event_types()) then
    raise exception using errcode = '22023', message = 'invalid_event_type',
      detail = pg_catalog.format('unknown event type %L', emit_event.type);
  end if;
  for e in
    select w.id from public.webhook_endpoints w
    where w.account_id = emit_event.account_id and w.active
      and (emit_event.type = any (w.event_types) or '*' = any (w.event_types))
    order by w.id
  loop
    if event_id is null then
      event_id := 'evt_' || replace(extensions.gen_random_uuid()::text, '-', '');
      body := pg_catalog.jsonb_build_object(
        'type', emit_event.type,
        'timestamp', pg_catalog.to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'data', coalesce(emit_event.data, '{}'::jsonb));
    end if;
    insert into public.webhook_deliveries (endpoint_id, account_id, event_id, type, payload, next_attempt_at, created_at)
    values (e.id, emit_event.account_id, event_id, emit_event.type, body, at, at)
    returning id into new_id;
    perform private.enqueue_job('webhook.deliver', pg_catalog.jsonb_build_object('delivery_id', new_id), 'webhook:' || new_id);
    sent := sent + 1;
  end loop;
  return sent;
end
$$;
comment on function private.emit_event(uuid, text, jsonb) is
  'Emits a webhook event in the caller''s transaction: one webhook_deliveries row and one webhook.deliver job per active endpoint of the account subscribed to the type (the same event_id for all). Returns how many were queued; costs one index probe when the account has no endpoint.';

-- ---------------------------------------------------------------------------
-- Delivering (called by the dispatcher's webhook runner)
-- ---------------------------------------------------------------------------
create or replace function private.webhook_request(delivery_id uuid)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  d public.webhook_deliveries;
  e public.webhook_endpoints;
  at timestamptz := private.now();
  ts text := (extract(epoch from at))::bigint::text;
  body text;
  signatures text;
begin
  select * into d from public.webhook_deliveries w where w.id = webhook_request.delivery_id for update;
  if d.id is null then
    return null;
  end if;
  select * into e from public.webhook_endpoints w where w.id = d.endpoint_id;
  if not e.active or d.status <> 'pending' then
    update public.webhook_deliveries w set status = case when w.status = 'pending' then 'canceled' else w.status end,
           next_attempt_at = null
    where w.id = d.id;
    return null;
  end if;
  update public.webhook_deliveries w set attempt = w.attempt + 1 where w.id = d.id;
  body := d.payload::text;
  select string_agg('v1,' || pg_catalog.encode(
           extensions.hmac(pg_catalog.convert_to(d.event_id || '.' || ts || '.' || body, 'UTF8'), s.secret, 'sha256'),
           'base64'), ' ' order by s.id desc)
    into signatures
  from private.webhook_secrets s
  where s.endpoint_id = e.id and (s.expires_at is null or s.expires_at > at);
  return pg_catalog.jsonb_build_object(
    'url', e.url,
    'body', body,
    'timeout_ms', round(coalesce((private.setting('webhook_timeout_seconds') #>> '{}')::numeric, 10) * 1000),
    'headers', pg_catalog.jsonb_build_object(
      'content-type', 'application/json',
      'user-agent', 'ledgerbase-webhooks/1',
      'webhook-id', d.event_id,
      'webhook-timestamp', ts,
      'webhook-signature', signatures));
end
$$;
comment on function private.webhook_request(uuid) is
  'The signed HTTP request for a delivery''s next attempt ({url, body, headers, timeout_ms}), counting the attempt: Standard Webhooks headers, one v1 signature (base64 HMAC-SHA256 of id.timestamp.body) per live secret, space-separated. Null (and the delivery canceled) when the endpoint is disabled or gone.';

create or replace function private.webhook_job_finished(job jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
  d public.webhook_deliveries;
  result jsonb := coalesce(job -> 'result', '{}'::jsonb);
  job_status text := job ->> 'status';
  at timestamptz := private.now();
begin
  select * into d from public.webhook_deliveries w where w.id = (job -> 'payload' ->> 'delivery_id')::uuid for update;
  if d.id is null or d.status <> 'pending' then
    return;
  end if;
  update public.webhook_deliveries w
  set status = case job_status when 'succeeded' then 'delivered' when 'dead' then 'failed' else 'pending' end,
      response_status = coalesce((result ->> 'response_status')::integer, w.response_status),
      response_body = coalesce(left(result ->> 'response_body', 1000), w.response_body),
      duration_ms = coalesce((result ->> 'duration_ms')::integer, w.duration_ms),
      last_error = case when job_status = 'succeeded' then w.last_error else left(job ->> 'last_error', 2000) end,
      delivered_at = case when job_status = 'succeeded' then at end,
      next_attempt_at = case when job_status = 'pending' then (job ->> 'run_at')::timestamptz end
  where w.id = d.id;

  -- Given up after the retry window: the endpoint has been failing for 3 days unless some
  -- other delivery to it got through meanwhile. Disable it and tell the billing managers.
  if job_status = 'dead' and not exists (
    select from public.webhook_deliveries o
    where o.endpoint_id = d.endpoint_id and o.status = 'delivered' and o.delivered_at >= d.created_at
  ) then
    perform private.disable_webhook_endpoint(d.endpoint_id,
      pg_catalog.format('deliveries failed since %s; last error: %s',
        pg_catalog.to_char(d.created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'), coalesce(job ->> 'last_error', 'unknown')));
  end if;
end
$$;
comment on function private.webhook_job_finished(jsonb) is
  'on_finish of webhook.deliver jobs: copies the attempt''s outcome into webhook_deliveries; when a delivery is given up and nothing reached the endpoint since it was created, disables the endpoint.';

create or replace function private.disable_webhook_endpoint(endpoint_id uuid, reason text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  e public.webhook_endpoints;
begin
  update public.webhook_endpoints w set active = false, disabled_reason = left(reason, 1000)
  where w.id = disable_webhook_endpoint.endpoint_id and w.active
  returning * into e;
  if e.id is null then
    return;
  end if;
  update public.webhook_deliveries w set status = 'canceled', next_attempt_at = null
  where w.endpoint_id = e.id and w.status = 'pending';
  perform private.notify_account(e.account_id, 'billing.manage', 'error',
    'A webhook endpoint was disabled',
    pg_catalog.format('Deliveries to %s failed for 3 days, so we stopped sending. Fix the endpoint, then re-enable it.', e.url),
    pg_catalog.jsonb_build_object('kind', 'webhook_endpoint_disabled', 'endpoint_id', e.id, 'url', e.url, 'reason', e.disabled_reason));
end
$$;
comment on function private.disable_webhook_endpoint(uuid, text) is
  'Turns an endpoint off with a reason, cancels its queued deliveries and notifies the account''s billing managers.';

-- ---------------------------------------------------------------------------
-- The emitters: the places that already know what happened
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
  perform private.emit_event(on_low_balance.account_id, 'credits.low',
    pg_catalog.jsonb_build_object('account_id', on_low_balance.account_id, 'available', on_low_balance.available,
                                  'threshold', private.low_balance_threshold()));
end
$$;
comment on function private.on_low_balance(uuid, bigint) is
  'Called by the credit engine in the transaction in which available credits fell below low_balance_threshold (once until they rise above it again): warns the account''s billing managers and emits credits.low.';

create or replace function private.emit_credits_granted(account_id uuid, grant_id uuid, source text, amount bigint, expires_at timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform private.emit_event(emit_credits_granted.account_id, 'credits.granted', pg_catalog.jsonb_build_object(
    'account_id', emit_credits_granted.account_id, 'grant_id', emit_credits_granted.grant_id,
    'source', emit_credits_granted.source, 'amount', emit_credits_granted.amount,
    'expires_at', emit_credits_granted.expires_at));
end
$$;
comment on function private.emit_credits_granted(uuid, uuid, text, bigint, timestamptz) is
  'Emits credits.granted for a new lot. Called by the credit_grants insert trigger; the credit engine may call it from wherever it writes lots instead.';

create or replace function private.credit_grants_emit()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform private.emit_credits_granted(new.account_id, new.id, new.source, new.amount, new.expires_at);
  return null;
end
$$;
comment on function private.credit_grants_emit() is 'AFTER INSERT trigger on credit_grants: credits.granted for every positive lot.';
-- Only while credit_grants is a table: if the credit engine keeps lots elsewhere (and
-- credit_grants becomes a view), it calls private.emit_credits_granted where it writes them.
do $grants$
begin
  if (select c.relkind from pg_catalog.pg_class c where c.oid = 'public.credit_grants'::regclass) in ('r', 'p') then
    create trigger credit_grants_emit_granted
      after insert on public.credit_grants
      for each row when (new.source <> 'clawback' and new.amount > 0)
      execute function private.credit_grants_emit();
  end if;
end
$grants$;

create or replace function private.subscriptions_emit()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  event_type text;
begin
  if new.account_id is null then
    return null;
  end if;
  if tg_op = 'INSERT' then
    event_type := 'subscription.created';
  elsif new.status = 'canceled' and old.status is distinct from 'canceled' then
    event_type := 'subscription.canceled';
  elsif (new.status, new.plan_key, new.quantity, new.cancel_at_period_end, new.current_period_end, new.trial_end)
        is distinct from
        (old.status, old.plan_key, old.quantity, old.cancel_at_period_end, old.current_period_end, old.trial_end) then
    event_type := 'subscription.updated';
  else
    return null;
  end if;
  perform private.emit_event(new.account_id, event_type, pg_catalog.jsonb_build_object(
    'account_id', new.account_id, 'subscription_id', new.id, 'stripe_subscription_id', new.stripe_subscription_id,
    'plan_key', new.plan_key, 'status', new.status, 'quantity', new.quantity,
    'current_period_start', new.current_period_start, 'current_period_end', new.current_period_end,
    'trial_end', new.trial_end, 'cancel_at_period_end', new.cancel_at_period_end, 'canceled_at', new.canceled_at));
  return null;
end
$$;
comment on function private.subscriptions_emit() is
  'AFTER INSERT/UPDATE trigger on subscriptions: subscription.created, subscription.canceled (status becomes canceled) or subscription.updated (status, plan, quantity, period, trial or cancel_at_period_end changed).';
create trigger subscriptions_emit_events
  after insert or update on public.subscriptions
  for each row execute function private.subscriptions_emit();

create or replace function private.payments_emit()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  event_type text;
begin
  if new.account_id is null then
    return null;
  end if;
  if new.status = 'paid' and (tg_op = 'INSERT' or old.status is distinct from 'paid') then
    event_type := 'payment.succeeded';
  elsif new.status = 'failed' and (tg_op = 'INSERT' or old.status is distinct from 'failed') then
    event_type := 'payment.failed';
  elsif tg_op = 'UPDATE' and new.amount_refunded > old.amount_refunded then
    event_type := 'payment.refunded';
  else
    return null;
  end if;
  perform private.emit_event(new.account_id, event_type, pg_catalog.jsonb_build_object(
    'account_id', new.account_id, 'payment_id', new.id, 'kind', new.kind, 'item_key', new.item_key,
    'quantity', new.quantity, 'amount', new.amount, 'currency', new.currency, 'status', new.status,
    'amount_refunded', new.amount_refunded, 'credits_granted', new.credits_granted,
    'stripe_invoice_id', new.stripe_invoice_id, 'stripe_payment_intent_id', new.stripe_payment_intent_id));
  return null;
end
$$;
comment on function private.payments_emit() is
  'AFTER INSERT/UPDATE trigger on payments: payment.succeeded (becomes paid), payment.failed (becomes failed), payment.refunded (amount_refunded grows).';
create trigger payments_emit_events
  after insert or update on public.payments
  for each row execute function private.payments_emit();

create or replace function private.account_members_emit()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.emit_event(new.account_id, 'member.added',
      pg_catalog.jsonb_build_object('account_id', new.account_id, 'user_id', new.user_id, 'role', new.role));
  elsif exists (select from public.accounts a where a.id = old.account_id) then
    -- Not when the whole account is being deleted: its endpoints go with it.
    perform private.emit_event(old.account_id, 'member.removed',
      pg_catalog.jsonb_build_object('account_id', old.account_id, 'user_id', old.user_id, 'role', old.role));
  end if;
  return null;
end
$$;
comment on function private.account_members_emit() is 'AFTER INSERT/DELETE trigger on account_members: member.added, member.removed.';
create trigger account_members_emit_events
  after insert or delete on public.account_members
  for each row execute function private.account_members_emit();

create or replace function private.api_keys_emit()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform private.emit_event(new.account_id,
    case when tg_op = 'INSERT' then 'api_key.created' else 'api_key.revoked' end,
    pg_catalog.jsonb_build_object('account_id', new.account_id, 'api_key_id', new.id, 'name', new.name,
      'prefix', new.prefix, 'scopes', new.scopes, 'expires_at', new.expires_at, 'revoked_at', new.revoked_at));
  return null;
end
$$;
comment on function private.api_keys_emit() is 'AFTER INSERT / revoke trigger on api_keys: api_key.created, api_key.revoked.';
create trigger api_keys_emit_created
  after insert on public.api_keys
  for each row execute function private.api_keys_emit();
create trigger api_keys_emit_revoked
  after update of revoked_at on public.api_keys
  for each row when (old.revoked_at is null and new.revoked_at is not null)
  execute function private.api_keys_emit();

-- ---------------------------------------------------------------------------
-- Realtime: live balances and notifications
-- ---------------------------------------------------------------------------
do $realtime$
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  if not (select puballtables from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    -- Only tables can be published: should the credit engine turn credit_balances into a
    -- view, its wallet table is the one to publish.
    if (select c.relkind from pg_catalog.pg_class c where c.oid = 'public.credit_balances'::regclass) in ('r', 'p')
       and not exists (select from pg_catalog.pg_publication_tables
                   where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'credit_balances') then
      alter publication supabase_realtime add table public.credit_balances;
    end if;
    if not exists (select from pg_catalog.pg_publication_tables
                   where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'notifications') then
      alter publication supabase_realtime add table public.notifications;
    end if;
  end if;
end
$realtime$;

-- ---------------------------------------------------------------------------
-- Entitlements
-- ---------------------------------------------------------------------------
create or replace function public.has_feature(account_id uuid, feature text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if not private.is_trusted_caller() and not public.is_staff_admin() then
    perform private.require_user();
    if not exists (select from public.account_members m
                   where m.account_id = has_feature.account_id and m.user_id = (select auth.uid())) then
      raise exception using errcode = '42501', message = 'permission denied',
        detail = pg_catalog.format('only members of account %s can read its features', has_feature.account_id);
    end if;
  end if;
  -- One rule: the view decides the plan and the features it turns on.
  return coalesce((select has_feature.feature = any (e.enabled_features)
                   from public.account_entitlements e where e.account_id = has_feature.account_id), false);
end
$$;
comment on function public.has_feature(uuid, text) is
  'Whether the account''s live plan (its live subscription''s, else free) turns the feature on (account_entitlements.enabled_features). Any member may ask. Errors: 42501 for non-members.';
revoke all on function public.has_feature(uuid, text) from public;
grant execute on function public.has_feature(uuid, text) to authenticated, service_role;

create or replace view public.account_entitlements
with (security_invoker = true)
as
  select a.id as account_id,
         p.key as plan_key,
         p.name as plan_name,
         p.tier,
         coalesce(s.status, 'free') as status,
         p.limits,
         p.features,
         p.included_credits,
         p.max_members,
         s.current_period_start,
         s.current_period_end,
         s.trial_end,
         coalesce(s.cancel_at_period_end, false) as cancel_at_period_end,
         s.stripe_subscription_id,
         -- The features a plan turns on: the keys of a features object whose value is not
         -- false, null, 0 or "", or the strings of a features array.
         array(
           select o.key from jsonb_each(case when jsonb_typeof(p.features) = 'object' then p.features else '{}' end) o
           where o.value not in ('false'::jsonb, 'null'::jsonb, '0'::jsonb, '""'::jsonb)
           union
           select e.value from jsonb_array_elements_text(case when jsonb_typeof(p.features) = 'array' then p.features else '[]' end) e
           order by 1
         ) as enabled_features,
         coalesce(p.limits -> 'quotas', '{}'::jsonb) as quotas
  from public.accounts a
  left join lateral (
    select s.plan_key, s.status, s.current_period_start, s.current_period_end, s.trial_end,
           s.cancel_at_period_end, s.stripe_subscription_id
    from public.subscriptions s
    join public.plans sp on sp.key = s.plan_key
    where s.account_id = a.id and s.status in ('trialing', 'active', 'past_due')
    order by sp.tier desc, s.current_period_end desc nulls last
    limit 1
  ) s on true
  join public.plans p on p.key = coalesce(s.plan_key, 'free');
comment on view public.account_entitlements is
  'What each of your accounts is entitled to now: its live subscription''s plan (trialing, active or past_due), else free (status ''free''), with the features it turns on (enabled_features, what has_feature answers from) and its limits (quotas per action or category). Runs with the caller''s rights: members see their accounts; the subscription shows with billing.read.';
