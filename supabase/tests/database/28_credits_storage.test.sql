-- How the credit engine stores a consumption (migration credit_engine_v2): the wallet row
-- carries the lot being drawn, and one entry is both the ledger entry and the usage
-- event. Clients read the same views as before and always see exact figures.
--
-- World (time frozen in May 2033, no quotas): team "t28-team" with its owner t28_ola and a stranger
-- Sam; the team holds a paid lot of 100 that never expires.
begin;
select plan(16);

select tests.freeze_time('2033-05-10 12:00:00+00');
update public.plans set limits = '{}' where key = 'free';
insert into public.billable_actions (key, name, category, credits, unit_size) values ('t28_ping', 'Ping', 'api', 0, 1);

select tests.create_users('t28_ola', 't28_sam');
select tests.team('t28-team', owner => 't28_ola', name => 'Storage Co');
select private.grant_credits(tests.account_id('t28-team'), 100, 'purchase', null, 't28-paid');

-- Balance, lots as clients see them, and whether the wallet agrees with its ledger and lots.
create function tests.t28_state() returns text
language sql stable security definer set search_path = '' as $$
  select tests.wallet_invariant(w.account_id) || ' ' || w.balance
         || ' [' || (select string_agg(g.source || ':' || g.remaining, ',' order by g.seq)
                     from public.credit_grants g where g.account_id = w.account_id) || ']'
  from public.credit_balances w where w.account_id = tests.account_id('t28-team')
$$;

-- ---------------------------------------------------------------------------
-- A consumption: the wallet carries the lot, one entry records it
-- ---------------------------------------------------------------------------
-- The grant put the paid lot on the wallet row.
select is((select lot_remaining from public.credit_balances where account_id = tests.account_id('t28-team')), 100::bigint,
  'after the grant the wallet carries the lot consumption draws next');

select tests.authenticate_as('t28_ola');
select is(public.consume_credits(tests.account_id('t28-team'), 'api_call', 7, 'ola-1', '{"route": "/render"}') ->> 'balance', '93',
  'Ola spends 7');
select tests.clear_authentication();

select is(tests.t28_state(), 'ok 93 [purchase:93]',
  'credit_grants shows the lot''s exact remaining credits right after the commit');
select is((select remaining from ledger.lots where account_id = tests.account_id('t28-team')), 100::bigint,
  'while the lot''s own row was not written: the wallet row holds its figure');
select is(
  (select count(*)::int from ledger.entries where account_id = tests.account_id('t28-team') and reason = 'consume'), 1,
  'the consumption is one entry');
select is(
  (select jsonb_build_object('same id', e.id = l.usage_event_id, 'delta', l.delta, 'charged', e.credits_charged,
                             'key', e.idempotency_key, 'metadata', e.metadata, 'balance_after', l.balance_after)
   from public.usage_events e join public.credit_ledger l on l.usage_event_id = e.id
   where e.account_id = tests.account_id('t28-team')),
  '{"same id": true, "delta": -7, "charged": 7, "key": "ola-1", "metadata": {"route": "/render"}, "balance_after": 93}'::jsonb,
  'that entry is both the usage event and the ledger entry that charged it');

-- ---------------------------------------------------------------------------
-- The draw-down order holds across what the wallet carries
-- ---------------------------------------------------------------------------
-- A promo lot of 5 that expires next week now comes first; the next charge takes it.
select private.grant_credits(tests.account_id('t28-team'), 5, 'promo', '2033-05-17 00:00:00+00', 't28-promo');
select tests.authenticate_as('t28_ola');
select is(public.consume_credits(tests.account_id('t28-team'), 'api_call', 3) ->> 'balance', '95', 'Ola spends 3 of 98');
select tests.clear_authentication();
select is(tests.t28_state(), 'ok 95 [purchase:93,promo:2]',
  'the promo lot granted after the paid one, expiring sooner, paid first');

-- 4 more span both lots: the explanation path draws across them and loads the next lot.
select tests.authenticate_as('t28_ola');
select is(public.consume_credits(tests.account_id('t28-team'), 'api_call', 4) ->> 'balance', '91', 'Ola spends 4 across two lots');
select tests.clear_authentication();
select is(tests.t28_state(), 'ok 91 [purchase:91,promo:0]',
  'the promo lot emptied, the paid lot paid the rest');
select is((select lot_id = (select id from ledger.lots where idempotency_key = 't28-paid') from public.credit_balances
           where account_id = tests.account_id('t28-team')), true,
  'and the wallet now carries the paid lot');

-- ---------------------------------------------------------------------------
-- Usage that charges nothing is a usage event, not a ledger entry
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t28_ola');
select is(public.consume_credits(tests.account_id('t28-team'), 't28_ping', 3) - 'usage_event_id',
  '{"balance": 91, "available": 91, "replayed": false, "credits_charged": 0}'::jsonb, 'a free ping charges nothing');
select is((select count(*)::int from public.usage_events where action = 't28_ping'), 1, 'Ola sees the ping in usage_events');
select is((select count(*)::int from public.credit_ledger where account_id = tests.account_id('t28-team') and delta = 0), 0,
  'and not in credit_ledger, which lists changes of balance only');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- The storage is not a way around row-level security
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t28_sam');
select is(
  (select count(*)::int from ledger.entries where account_id = tests.account_id('t28-team'))
  + (select count(*)::int from ledger.lots where account_id = tests.account_id('t28-team')),
  0, 'Sam, a stranger, reads no entry and no lot of the team even in the storage schema');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from ledger.entries $$, '42501', 'permission denied for schema ledger',
  'anon cannot reach the storage schema at all');
select tests.clear_authentication();

select * from finish();
rollback;
