-- The client IP of the `ip` rate-limit scope (docs/credits.md#client-ip): it is the X-Forwarded-For hop the
-- platform's gateway appended, counted from the right past `trusted_proxy_hops` trusted
-- proxies, never the first hop, which the client writes itself.
--
-- What the gateway does (README, Security): Kong and Cloudflare append the address of the peer
-- that connected to them to whatever X-Forwarded-For the client sent. So for a client at
-- 203.0.113.50 that sends "X-Forwarded-For: 1.2.3.4", PostgREST sees "1.2.3.4, 203.0.113.50".
-- Personas: mallory (203.0.113.50) forges the header; vera (198.51.100.7) is her victim.
begin;
select plan(14);

-- One sign-up as PostgREST would run it for anon, with the X-Forwarded-For the gateway passes on.
create function tests.join_waitlist_from(forwarded_for text, email text)
returns jsonb
language plpgsql
as $$
begin
  perform tests.clear_authentication();
  perform tests.authenticate_as_anon();
  perform set_config('request.headers',
    jsonb_build_object('x-forwarded-for', forwarded_for, 'user-agent', 'pgtap')::text, true);
  return public.join_waitlist(email);
end
$$;
grant execute on function tests.join_waitlist_from(text, text) to anon;

create function tests.ip_seen(forwarded_for text)
returns text
language plpgsql
as $$
begin
  perform set_config('request.headers', jsonb_build_object('x-forwarded-for', forwarded_for)::text, true);
  return private.request_ip();
end
$$;

delete from private.rate_limit_buckets where key like 'join_waitlist:%';

-- ---------------------------------------------------------------------------
-- Which hop is the client (default: no trusted proxy in front of the gateway)
-- ---------------------------------------------------------------------------
select is((select value from private.settings where key = 'trusted_proxy_hops'), '0'::jsonb,
  'trusted_proxy_hops defaults to 0: the gateway''s own hop, the rightmost, is the client');
select is(tests.ip_seen('203.0.113.50'), '203.0.113.50', 'one hop: the address the gateway appended');
select is(tests.ip_seen('1.2.3.4, 203.0.113.50'), '203.0.113.50',
  'a forged first hop is ignored: the rightmost hop is the one the gateway appended');
select is(tests.ip_seen(' 10.9.8.7 ,  2001:DB8::0:1 '), '2001:db8::1',
  'hops are trimmed and IPv6 addresses written one way, so one client is one bucket');
select is(tests.ip_seen('1.2.3.4, not-an-ip'), null,
  'a hop that is not an IP address is no client IP (the call counts as an unknown client)');
select is(tests.ip_seen(''), null, 'an empty header names no client');

-- ---------------------------------------------------------------------------
-- The bypass: rotating a forged first hop no longer opens fresh buckets
-- ---------------------------------------------------------------------------
-- join_waitlist allows a burst of 5 per IP. Mallory sends six sign-ups, each with another
-- forged first hop; the gateway appends her real address every time.
select tests.join_waitlist_from('10.0.0.' || n || ', 203.0.113.50', 'rotate' || n || '@example.com')
  from generate_series(1, 5) n;
select throws_ok($$ select tests.join_waitlist_from('10.0.0.6, 203.0.113.50', 'rotate6@example.com') $$, 'PT429', 'rate_limited',
  'rotating a forged first X-Forwarded-For hop does not get past the per-IP limit');

-- ---------------------------------------------------------------------------
-- The lock-out: forging the victim's address empties nobody's bucket but one's own
-- ---------------------------------------------------------------------------
select tests.clear_authentication();
delete from private.rate_limit_buckets where key like 'join_waitlist:%';
select tests.join_waitlist_from('198.51.100.7, 203.0.113.50', 'forged' || n || '@example.com')
  from generate_series(1, 5) n;
select throws_ok($$ select tests.join_waitlist_from('198.51.100.7, 203.0.113.50', 'forged6@example.com') $$, 'PT429', 'rate_limited',
  'mallory, naming vera as her first hop, only drains her own bucket');
select is(tests.join_waitlist_from('198.51.100.7', 'vera@example.com'), '{"status": "ok"}'::jsonb,
  'vera, arriving from her own address, is not locked out');
select tests.clear_authentication();
select is((select count(*)::int from private.rate_limit_buckets where key = 'join_waitlist:198.51.100.7'), 1,
  'vera''s bucket holds only her own call');

-- ---------------------------------------------------------------------------
-- One trusted proxy in front of the gateway (e.g. a load balancer that appends its peer)
-- ---------------------------------------------------------------------------
select tests.clear_authentication();
update private.settings set value = '1' where key = 'trusted_proxy_hops';
select is(tests.ip_seen('1.2.3.4, 203.0.113.50, 10.0.0.9'), '203.0.113.50',
  'with one trusted proxy, the client is the second hop from the right');
select is(tests.ip_seen('203.0.113.50'), '203.0.113.50',
  'a header shorter than the trusted chain yields its leftmost hop, the farthest one known');
delete from private.rate_limit_buckets where key like 'join_waitlist:%';
select tests.join_waitlist_from('10.1.1.' || n || ', 203.0.113.50, 10.0.0.9', 'lb' || n || '@example.com')
  from generate_series(1, 5) n;
select throws_ok($$ select tests.join_waitlist_from('10.1.1.6, 203.0.113.50, 10.0.0.9', 'lb6@example.com') $$, 'PT429', 'rate_limited',
  'behind a trusted proxy, forged first hops still share the client''s bucket');

-- A bad setting never makes the forged first hop count: it is read as 0.
select tests.clear_authentication();
update private.settings set value = '"many"' where key = 'trusted_proxy_hops';
select is(tests.ip_seen('1.2.3.4, 203.0.113.50'), '203.0.113.50',
  'a malformed trusted_proxy_hops falls back to 0 (the rightmost hop)');

select * from finish();
rollback;
