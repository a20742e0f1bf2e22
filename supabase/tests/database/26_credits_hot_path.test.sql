-- The hot path of consume_credits (migration credits_hot_path): what keeps it cheap is
-- structural, so these stories prove the structure as well as the behaviour.
--
-- World: t26_hana (owner of team "t26-team" and of her personal account), t26_vik (viewer of
-- the team).
-- The team has two lots: a promo lot of 5 expiring soon, a paid lot of 100.
begin;
select plan(26);

select tests.freeze_time('2032-03-01 10:00:00+00');
update public.plans set limits = '{}' where key = 'free';

select tests.create_users('t26_hana', 't26_vik');
select tests.team('t26-team', owner => 't26_hana', viewers => '{t26_vik}', name => 'Hot Path Co');
select private.grant_credits(tests.account_id('t26-team'), 5, 'promo', '2032-03-02 00:00:00+00', 't26-promo');
select private.grant_credits(tests.account_id('t26-team'), 100, 'purchase', null, 't26-paid');

-- The team's wallet: the kit's invariant (balance = sum of deltas = sum of remaining, 'ok'),
-- the balance, and its lots in order.
create function tests.t26_wallet() returns text
language sql stable security definer set search_path = '' as $$
  select tests.wallet_invariant(w.account_id) || ' ' || w.balance
         || ' lots ' || (select string_agg(g.source || ':' || g.remaining, ',' order by g.seq)
                         from public.credit_grants g where g.account_id = w.account_id)
  from public.credit_balances w where w.account_id = tests.account_id('t26-team')
$$;

-- ---------------------------------------------------------------------------
-- Structure: draw-downs and charges rewrite rows in place
-- ---------------------------------------------------------------------------
-- A HOT update (no new index entries) is possible only when no index mentions a changed
-- column, not even in its predicate.
select is(
  (select count(*)::int from pg_index i
   where i.indrelid = 'ledger.lots'::regclass
     and ((select attnum from pg_attribute where attrelid = i.indrelid and attname = 'remaining') = any (i.indkey)
          or coalesce(pg_get_expr(i.indpred, i.indrelid), '') ~ 'remaining'
          or coalesce(pg_get_expr(i.indexprs, i.indrelid), '') ~ 'remaining')),
  0, 'no index of the lots mentions remaining, so a draw-down can be a HOT update');
select is(
  (select count(*)::int from pg_index i, pg_attribute a
   where i.indrelid = 'public.credit_balances'::regclass and a.attrelid = i.indrelid
     and a.attname in ('balance', 'held', 'available', 'consume_tat', 'quota_period_start', 'quota_used',
                       'low_balance_since', 'updated_at', 'lot_id', 'lot_remaining')
     and (a.attnum = any (i.indkey)
          or coalesce(pg_get_expr(i.indpred, i.indrelid), '') ~ a.attname
          or coalesce(pg_get_expr(i.indexprs, i.indrelid), '') ~ a.attname)),
  0, 'no index of credit_balances mentions a column a consumption changes');
select is(
  (select count(*)::int from pg_constraint c
   where c.contype = 'f' and c.conrelid = 'ledger.entries'::regclass
     and c.confrelid = 'public.accounts'::regclass),
  0, 'usage events and ledger entries take no KEY SHARE lock on the account row (no foreign key to accounts)');

-- Hana spends 3: the promo lot (soonest expiry, which the wallet row carries) covers it.
create temp table t26_writes on commit drop as
select pg_stat_get_xact_tuples_updated('ledger.lots'::regclass) as lots,
       pg_stat_get_xact_tuples_inserted('ledger.entries'::regclass) as entries,
       pg_stat_get_xact_tuples_updated('public.credit_balances'::regclass) as wallets,
       pg_stat_get_xact_tuples_hot_updated('public.credit_balances'::regclass) as hot_wallets;
select tests.authenticate_as('t26_hana');
select is(public.consume_credits(tests.account_id('t26-team'), 'api_call', 3) - 'usage_event_id',
  '{"balance": 102, "available": 102, "replayed": false, "credits_charged": 3}'::jsonb,
  'Hana spends 3 of 105');
select tests.clear_authentication();
select is(
  (select format('lots %s, entries %s, wallets %s (HOT %s)',
                 pg_stat_get_xact_tuples_updated('ledger.lots'::regclass) - lots,
                 pg_stat_get_xact_tuples_inserted('ledger.entries'::regclass) - entries,
                 pg_stat_get_xact_tuples_updated('public.credit_balances'::regclass) - wallets,
                 pg_stat_get_xact_tuples_hot_updated('public.credit_balances'::regclass) - hot_wallets)
   from t26_writes),
  'lots 0, entries 1, wallets 1 (HOT 1)',
  'two row writes: the wallet row in place (it carries the lot being drawn) and one entry that is ledger entry and usage event');
select is(tests.t26_wallet(), 'ok 102 lots promo:2,purchase:100', 'the soonest-expiring lot paid');

-- ---------------------------------------------------------------------------
-- Falling back to the general path gives the same answers
-- ---------------------------------------------------------------------------
-- 4 more: the promo lot has 2 left, so the draw-down spans two lots.
select tests.authenticate_as('t26_hana');
select is(public.consume_credits(tests.account_id('t26-team'), 'api_call', 4) ->> 'balance', '98',
  'a charge larger than the first lot is accepted');
select tests.clear_authentication();
select is(tests.t26_wallet(), 'ok 98 lots promo:0,purchase:98', 'the promo lot emptied first, the paid lot paid the rest');

-- A charge of more than is available is PT402 with what was required and what is available.
select tests.authenticate_as('t26_hana');
select is(
  tests.caught($$ select public.consume_credits(tests.account_id('t26-team'), 'api_call', 99) $$) - 'hint',
  '{"code": "PT402", "message": "insufficient_credits", "detail": "{\"required\": 99, \"available\": 98}"}'::jsonb,
  'one credit too many: insufficient_credits, required 99, available 98');
select tests.clear_authentication();
select is(tests.t26_wallet(), 'ok 98 lots promo:0,purchase:98', 'and nothing changed');

-- A lot due to expire sends the call through the general path, which expires it first.
select private.grant_credits(tests.account_id('t26-team'), 10, 'promo', '2032-03-01 10:30:00+00', 't26-short');
select tests.freeze_time('2032-03-01 11:00:00+00');
select tests.authenticate_as('t26_hana');
select is(public.consume_credits(tests.account_id('t26-team'), 'api_call', 1) ->> 'balance', '97',
  'after the short lot expired, a charge of 1 leaves 108 - 10 expired - 1 = 97');
select tests.clear_authentication();
select is(tests.t26_wallet(), 'ok 97 lots promo:0,purchase:97,promo:0', 'the expired lot paid nothing: it was expired, then the paid lot paid');
select is(
  (select string_agg(reason || ' ' || delta, ', ' order by id) from public.credit_ledger
   where account_id = tests.account_id('t26-team')),
  'promo 5, purchase 100, consume -3, consume -4, promo 10, expire -10, consume -1',
  'the ledger tells it in order');

-- A wallet unknown to the trusted path is not_found, and leaves no usage event behind.
select is(
  tests.caught($$ select public.consume_credits(gen_random_uuid(), 'api_call', 1) $$) ->> 'code',
  'PT404', 'a server consuming from an account without a wallet gets not_found');
select is((select count(*)::int from public.usage_events where account_id = gen_random_uuid()), 0,
  'and no usage event is left');

-- ---------------------------------------------------------------------------
-- The rate limit on the wallet row, and in the bucket table when the scope changes
-- ---------------------------------------------------------------------------
-- A minute later (the bucket has refilled from the calls above), a policy of 2 calls, 1 per second.
select tests.freeze_time('2032-03-01 11:01:00+00');
update private.rate_limit_policies set capacity = 2, refill_per_second = 1 where name = 'consume_credits';
select tests.authenticate_as('t26_hana');
select lives_ok($$ select public.consume_credits(tests.account_id('t26-team'), 'api_call') $$, 'call 1 of 2');
select lives_ok($$ select public.consume_credits(tests.account_id('t26-team'), 'api_call') $$, 'call 2 of 2');
select is(
  tests.caught($$ select public.consume_credits(tests.account_id('t26-team'), 'api_call') $$) ->> 'hint',
  'retry after 1 second', 'the third within the same second waits one second');
select tests.clear_authentication();
select is(tests.t26_wallet(), 'ok 95 lots promo:0,purchase:95,promo:0', 'the refused call charged nothing');

-- An operator counts consume_credits per user instead: the bucket table takes over.
update private.rate_limit_policies set scope = 'user' where name = 'consume_credits';
select tests.authenticate_as('t26_hana');
select lives_ok($$ select public.consume_credits(tests.account_id('t26-team'), 'api_call') $$,
  'with scope user, Hana''s own bucket is fresh');
select tests.clear_authentication();
select is((select count(*)::int from private.rate_limit_buckets
           where key = 'consume_credits:' || tests.user_id('t26_hana')), 1,
  'and it is the bucket policy:user id');
update private.rate_limit_policies set scope = 'account', capacity = 1000, refill_per_second = 100 where name = 'consume_credits';

-- ---------------------------------------------------------------------------
-- Reading the ledger follows role_permissions
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t26_vik');
select is((select count(*)::int from public.credit_ledger where account_id = tests.account_id('t26-team')), 10,
  'Vik, a viewer, reads the team''s 10 ledger entries (viewers hold credits.read)');
select tests.clear_authentication();
delete from public.role_permissions where role = 'viewer' and permission = 'credits.read';
select tests.authenticate_as('t26_vik');
select is((select count(*)::int from public.credit_ledger where account_id = tests.account_id('t26-team')), 0,
  'once viewers lose credits.read, Vik reads none');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Deleting an account deletes its history (by trigger, not foreign key)
-- ---------------------------------------------------------------------------
-- (its id, kept for the checks after it is gone)
create temp table deleted_team on commit drop as select tests.account_id('t26-team') as id;
delete from public.accounts where id = (select id from deleted_team);
select is(
  (select count(*)::int from public.credit_ledger where account_id = (select id from deleted_team))
  + (select count(*)::int from public.usage_events where account_id = (select id from deleted_team)),
  0, 'the team''s ledger and usage events went with it');

-- Vik's user is deleted (as the auth server does): his personal account goes, and with it
-- its ledger (the signup bonus).
select is((select count(*)::int from public.credit_ledger where account_id = tests.user_id('t26_vik')), 1,
  'Vik''s personal account has its signup bonus entry');
create temp table deleted_user on commit drop as select tests.user_id('t26_vik') as id;
delete from auth.users where id = (select id from deleted_user);
select is((select count(*)::int from public.credit_ledger where account_id = (select id from deleted_user)), 0,
  'deleting his user deleted his personal account''s ledger');

select * from finish();
rollback;
