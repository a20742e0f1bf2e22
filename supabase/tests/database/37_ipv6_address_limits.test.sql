-- Per-address limits and IPv6 (docs/credits.md#client-ip): an IPv6 client is given a whole network
-- (a /64 at least, often a /56 or /48), so the `ip` rate-limit scope counts IPv6 clients per
-- network prefix (`ipv6_limit_prefix`, default 64), IPv4 clients per address, and an IPv4-mapped
-- IPv6 address (::ffff:a.b.c.d) as the IPv4 address inside it.
--
-- Everything runs end to end through join_waitlist, the per-address limit anon can call, with the
-- X-Forwarded-For the gateway passes on; its burst is cut to 1 so a second call from the same
-- client is refused.
--
-- Personas:
--   mallory  owns 2001:db8:ace:1::/64 and rotates through its addresses
--   vera     lives next door, in 2001:db8:ace:2::/64
--   oscar    an IPv4 client at 198.51.100.7; his neighbour at 198.51.100.8
--   dana     an IPv4 client at 192.0.2.10 who also arrives as ::ffff:192.0.2.10 (a dual-stack proxy)
--   bruno    whose provider gives out a /48: 2001:db8:beef::/48
begin;
select plan(22);

-- One sign-up as PostgREST would run it for anon, from the client the gateway saw; back to the
-- test runner afterwards (a refused call rolls the role back with it).
create function tests.sign_up_from(address text, email text)
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
begin
  perform tests.clear_authentication();
  perform tests.authenticate_as_anon();
  perform set_config('request.headers',
    jsonb_build_object('x-forwarded-for', address, 'user-agent', 'pgtap')::text, true);
  answer := public.join_waitlist(email);
  perform tests.clear_authentication();
  return answer;
end
$$;

-- Fresh buckets for the next story; the buckets there are.
create function tests.fresh_waitlist_buckets()
returns void
language sql
as $$
  delete from private.rate_limit_buckets where key like 'join_waitlist:%'
$$;

create function tests.waitlist_buckets()
returns text[]
language sql
as $$
  select array(select key from private.rate_limit_buckets where key like 'join_waitlist:%' order by key)
$$;

-- One call per client, then refused.
update private.rate_limit_policies set capacity = 1 where name = 'join_waitlist';
select tests.fresh_waitlist_buckets();

-- ---------------------------------------------------------------------------
-- The setting
-- ---------------------------------------------------------------------------
select is((select value from private.settings where key = 'ipv6_limit_prefix'), '64'::jsonb,
  'ipv6_limit_prefix defaults to 64: one IPv6 bucket per /64, the network a client is given at least');

-- ---------------------------------------------------------------------------
-- Mallory rotates through her /64
-- ---------------------------------------------------------------------------
select is(tests.sign_up_from('2001:db8:ace:1::1', 'mallory1@example.com'), '{"status": "ok"}'::jsonb,
  'mallory''s first sign-up from her /64 is let through');
select throws_ok($$ select tests.sign_up_from('2001:db8:ace:1:ffff:ffff:ffff:fffe', 'mallory2@example.com') $$,
  'PT429', 'rate_limited',
  'a second sign-up from another address of the same /64 is refused: rotating addresses opens no fresh bucket');
select throws_ok($$ select tests.sign_up_from('1.2.3.4, 2001:DB8:ACE:1:0:0:0:77', 'mallory3@example.com') $$,
  'PT429', 'rate_limited',
  'nor does writing the address another way behind a forged first hop');
select is(tests.waitlist_buckets(), array['join_waitlist:2001:db8:ace:1::/64'],
  'her calls share one bucket, keyed by the normalized network, 2001:db8:ace:1::/64');

-- The audit log still names the full address: only the limit key is the network.
select set_config('request.headers', '{"x-forwarded-for": "2001:db8:ace:1:ffff:ffff:ffff:fffe"}', true);
select is(private.request_ip(), '2001:db8:ace:1:ffff:ffff:ffff:fffe',
  'the client IP of a request (audit log) stays the full address');

-- ---------------------------------------------------------------------------
-- Vera, in the next /64, is not Mallory
-- ---------------------------------------------------------------------------
select is(tests.sign_up_from('2001:db8:ace:2::1', 'vera@example.com'), '{"status": "ok"}'::jsonb,
  'vera, in the neighbouring /64, has a bucket of her own');
select is(tests.waitlist_buckets(),
  array['join_waitlist:2001:db8:ace:1::/64', 'join_waitlist:2001:db8:ace:2::/64'],
  'two /64s are two buckets');

-- ---------------------------------------------------------------------------
-- IPv4 is counted per address, as before
-- ---------------------------------------------------------------------------
select tests.fresh_waitlist_buckets();
select is(tests.sign_up_from('198.51.100.7', 'oscar1@example.com'), '{"status": "ok"}'::jsonb,
  'oscar''s first sign-up over IPv4 is let through');
select is(tests.sign_up_from('198.51.100.8', 'neighbour@example.com'), '{"status": "ok"}'::jsonb,
  'the next IPv4 address is another client: IPv4 is not grouped');
select throws_ok($$ select tests.sign_up_from('198.51.100.7', 'oscar2@example.com') $$, 'PT429', 'rate_limited',
  'oscar''s second sign-up from his address is refused');
select is(tests.waitlist_buckets(), array['join_waitlist:198.51.100.7', 'join_waitlist:198.51.100.8'],
  'IPv4 buckets are keyed by the address itself, as they were');

-- ---------------------------------------------------------------------------
-- Dana: an IPv4-mapped IPv6 address is the IPv4 address
-- ---------------------------------------------------------------------------
select tests.fresh_waitlist_buckets();
select is(tests.sign_up_from('::ffff:192.0.2.10', 'dana1@example.com'), '{"status": "ok"}'::jsonb,
  'dana''s first sign-up arrives as ::ffff:192.0.2.10');
select throws_ok($$ select tests.sign_up_from('192.0.2.10', 'dana2@example.com') $$, 'PT429', 'rate_limited',
  'her second, as plain 192.0.2.10, is refused: both are one client');
select is(tests.waitlist_buckets(), array['join_waitlist:192.0.2.10'],
  'the mapped address is keyed as the IPv4 address inside it');
select is(tests.sign_up_from('::ffff:192.0.2.11', 'dana-neighbour@example.com'), '{"status": "ok"}'::jsonb,
  'another mapped IPv4 address is another client (mapped addresses are not grouped as an IPv6 /64)');

-- ---------------------------------------------------------------------------
-- Bruno's provider hands out a /48: the operator sets ipv6_limit_prefix = 48
-- ---------------------------------------------------------------------------
select tests.fresh_waitlist_buckets();
insert into private.settings (key, value) values ('ipv6_limit_prefix', '48')
on conflict (key) do update set value = excluded.value;
select is(tests.sign_up_from('2001:db8:beef:1::1', 'bruno1@example.com'), '{"status": "ok"}'::jsonb,
  'with a /48 setting, bruno''s first sign-up is let through');
select throws_ok($$ select tests.sign_up_from('2001:db8:beef:2::1', 'bruno2@example.com') $$, 'PT429', 'rate_limited',
  'his second, from another /64 of the same /48, is refused: the setting is honoured');
select is(tests.waitlist_buckets(), array['join_waitlist:2001:db8:beef::/48'],
  'the bucket is keyed by the /48');

-- ---------------------------------------------------------------------------
-- A setting outside 32..128 (or not a number) counts as 64
-- ---------------------------------------------------------------------------
-- 16 would put whole providers in one bucket; "wide" means nothing. Both are read as the default.
select tests.fresh_waitlist_buckets();
update private.settings set value = '16' where key = 'ipv6_limit_prefix';
select tests.sign_up_from('2001:db8:beef:1::1', 'bruno3@example.com');
select is(tests.sign_up_from('2001:db8:beef:2::1', 'bruno4@example.com'), '{"status": "ok"}'::jsonb,
  'an out-of-range ipv6_limit_prefix (16) falls back to 64: two /64s do not share');
update private.settings set value = '"wide"' where key = 'ipv6_limit_prefix';
select throws_ok($$ select tests.sign_up_from('2001:db8:beef:1::2', 'bruno5@example.com') $$, 'PT429', 'rate_limited',
  'a malformed ipv6_limit_prefix ("wide") falls back to 64: one /64 still shares one bucket');
select is(tests.waitlist_buckets(), array['join_waitlist:2001:db8:beef:1::/64', 'join_waitlist:2001:db8:beef:2::/64'],
  'with a bad setting the buckets are /64s');

select * from finish();
rollback;
