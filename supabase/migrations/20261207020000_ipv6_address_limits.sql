-- Per-address limits count an IPv6 client by its network (rate limits).
--
--   * An IPv6 client is given a whole network, a /64 at least (often a /56 or /48), and may
--     send every request from another address of it. The `ip` scope of a rate limit (today
--     join_waitlist, and any policy an operator adds with that scope) therefore keys an IPv6
--     client by its network prefix, `ipv6_limit_prefix` bits (setting, default 64); an IPv4
--     client stays keyed by its address, and an IPv4-mapped IPv6 address (::ffff:a.b.c.d) by
--     the IPv4 address inside it. One function, private.address_limit_key(), is that rule.
--   * private.request_ip() still answers the full address: the audit log records it, and a
--     network is no client IP to show anyone.
--   * Error codes and messages of the limits are unchanged (PT429 rate_limited).
--
-- Upgrade: buckets already kept under a full IPv6 address (join_waitlist:2001:db8::1) are no
-- longer read; they hold nothing but a past timestamp and age out like any idle bucket
-- (private.purge_rate_limit_buckets()). IPv4 buckets keep their keys.

-- ---------------------------------------------------------------------------
-- The setting
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('ipv6_limit_prefix', '64',
   'How many leading bits of an IPv6 client address the per-address (`ip` scope) rate limits count: clients in one network of that size share one bucket. 32 to 128; 64 (the default) is the network every IPv6 client is given at least, 48 or 56 when providers in front of your users hand out those. A value outside 32..128 or not a whole number counts as 64. IPv4 clients are counted per address.')
on conflict (key) do nothing;

-- ---------------------------------------------------------------------------
-- The rate-limit key of a client address
-- ---------------------------------------------------------------------------
create function private.address_limit_key(address inet)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  configured text := private.setting('ipv6_limit_prefix') #>> '{}';
  prefix integer := 64;
  a inet := pg_catalog.host(address)::inet;  -- the address alone, whatever mask it came with
begin
  if a is null then
    return null;
  end if;
  if a <<= '::ffff:0.0.0.0/96'::inet then
    -- IPv4-mapped: the IPv4 address inside (the low 32 bits), keyed as IPv4 is.
    a := '0.0.0.0'::inet + (a - '::ffff:0.0.0.0'::inet);
  end if;
  if pg_catalog.family(a) = 4 then
    return pg_catalog.host(a);
  end if;
  if configured ~ '^[0-9]{1,3}$' then
    prefix := case when configured::integer between 32 and 128 then configured::integer else 64 end;
  end if;
  -- network() zeroes the host bits; a cidr is written compressed, lower-case, with its length.
  return pg_catalog.network(pg_catalog.set_masklen(a, prefix))::text;
end
$$;
comment on function private.address_limit_key(inet) is
  'The subject per-address (`ip` scope) rate limits count a client address under: an IPv4 address itself (203.0.113.7); an IPv4-mapped IPv6 address as the IPv4 address inside it; any other IPv6 address as its network of `ipv6_limit_prefix` bits (setting, default 64; outside 32..128 or malformed counts as 64), written 2001:db8:1:2::/64. Null for null.';

-- ---------------------------------------------------------------------------
-- The `ip` scope uses it
-- ---------------------------------------------------------------------------
create or replace function private.rate_limit(policy text, account_id uuid default null, plan_limits jsonb default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  p private.rate_limit_policies;
  override jsonb;
  subject text;
begin
  select * into p from private.rate_limit_policies r where r.name = policy;
  if not found then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('unknown rate-limit policy %s', policy);
  end if;

  if plan_limits is null and account_id is not null then
    select ap.limits into plan_limits from private.account_plan(account_id) ap;
  end if;
  override := plan_limits -> 'rate_limits' -> policy;
  if jsonb_typeof(override) = 'object' then
    p.capacity := coalesce((override ->> 'capacity')::integer, p.capacity);
    p.refill_per_second := coalesce((override ->> 'refill_per_second')::numeric, p.refill_per_second);
  end if;

  subject := case p.scope
    when 'user' then coalesce(auth.uid()::text, 'account:' || account_id::text)
    when 'account' then coalesce(account_id::text, auth.uid()::text)
    when 'api_key' then coalesce(nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), ''), account_id::text)
    -- request_ip() is a valid address or null
    when 'ip' then private.address_limit_key(private.request_ip()::inet)
  end;
  perform private.check_rate_limit(policy, coalesce(subject, 'unknown'), p.capacity, p.refill_per_second);
end
$$;
comment on function private.rate_limit(text, uuid, jsonb) is
  'Applies a named policy to the caller: the subject follows the policy scope (user, account, API key, or the client address from request.headers keyed by private.address_limit_key(): IPv4 per address, IPv6 per ipv6_limit_prefix network), with the overrides of the account''s plan (plan_limits when the caller has them already).';

comment on table private.rate_limit_policies is
  'Rate-limit policies: a burst of `capacity` calls, refilled at `refill_per_second`, counted per user, account, client address (IPv4 address, IPv6 network: private.address_limit_key()) or API key. Plans override capacity and refill in plans.limits.rate_limits.<name>.';

-- The shipped description, where the operator kept it.
update private.rate_limit_policies
   set description = 'Waitlist sign-ups from one client address (an IPv4 address, an IPv6 network of ipv6_limit_prefix bits).'
 where name = 'join_waitlist' and description = 'Waitlist sign-ups from one IP address.';
