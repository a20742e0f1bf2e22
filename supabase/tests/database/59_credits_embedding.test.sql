-- A hold and its usage event embed in each other through the API (docs/credits.md#holds):
-- the computed relationships public.usage_events(credit_holds) and
-- public.credit_holds(usage_events) that PostgREST follows for
-- credit_holds?select=*,usage_events(*) and usage_events?select=*,credit_holds(*).
--
-- World: team "t59-team" (Ivy the owner, Jon a member who runs long jobs), funded with 100
-- purchased credits; Mallory, a stranger. Jon reserves and captures one job ("job-1"), keeps
-- a second one open ("job-2") and makes one plain consumption.
begin;
select plan(13);

update public.plans set limits = '{}' where key = 'free';
select tests.create_users('t59_ivy', 't59_jon', 't59_mallory');
select tests.team('t59-team', owner => 't59_ivy', members => '{t59_jon}', name => 'Embed Co');
select private.grant_credits(tests.account_id('t59-team'), 100, 'purchase', null, 't59-fund');

-- Rows handed to the personas as a client would hold them (bypasses RLS: Mallory gets the
-- row of a hold she cannot read, to prove the functions do not leak what is behind it).
create function tests.t59_hold(key text) returns public.credit_holds
language sql stable security definer set search_path = '' as $$
  select h from public.credit_holds h where h.idempotency_key = t59_hold.key
$$;
create function tests.t59_event(event_id uuid) returns public.usage_events
language sql stable security definer set search_path = '' as $$
  select e from public.usage_events e where e.id = t59_event.event_id
$$;
grant execute on function tests.t59_hold(text), tests.t59_event(uuid) to anon, authenticated;

select tests.authenticate_as('t59_jon');
select public.reserve_credits(tests.account_id('t59-team'), 'text_to_thumbnail', 2, 'job-1');
select public.capture_credits((tests.t59_hold('job-1')).id);
select public.reserve_credits(tests.account_id('t59-team'), 'text_to_thumbnail', 1, 'job-2');
create temporary table t59_plain as
  select (public.consume_credits(tests.account_id('t59-team'), 'text_to_thumbnail', 1) ->> 'usage_event_id')::uuid as id;
grant select on t59_plain to authenticated, anon;

-- ---------------------------------------------------------------------------
-- credit_holds -> usage_events: the capture's event, one row
-- ---------------------------------------------------------------------------
select results_eq(
  $$ select e.id, e.action, e.quantity, e.credits_charged, e.hold_id
     from public.credit_holds h, public.usage_events(h) e where h.idempotency_key = 'job-1' $$,
  $$ select h.usage_event_id, 'text_to_thumbnail', 2, 20::bigint, h.id from public.credit_holds h where h.idempotency_key = 'job-1' $$,
  'Jon embeds the usage event of his captured job in the hold: the capture''s event, 2 thumbnails, 20 credits');
select is(
  (select count(*)::int from public.credit_holds h, public.usage_events(h) e where h.idempotency_key = 'job-2'),
  0, 'a hold still open has no usage event to embed');

-- ---------------------------------------------------------------------------
-- usage_events -> credit_holds: the hold the event captured
-- ---------------------------------------------------------------------------
select results_eq(
  $$ select h.idempotency_key, h.status from public.usage_events e, public.credit_holds(e) h
     where e.id = (tests.t59_hold('job-1')).usage_event_id $$,
  $$ values ('job-1', 'captured') $$,
  'Jon embeds the hold in the usage event it recorded: job-1, captured');
select is(
  (select count(*)::int from public.usage_events e, public.credit_holds(e) h where e.id = (select id from t59_plain)),
  0, 'a consumption without a hold embeds no hold');
select is(
  (select count(*)::int from public.usage_events e, public.credit_holds(e) h
    where e.account_id = tests.account_id('t59-team')),
  1, 'over the team''s usage, only the captured job has a hold: the embedding follows the link, nothing else');

-- ---------------------------------------------------------------------------
-- Row-level security decides, as it did for the foreign key
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t59_mallory');
select is((select count(*)::int from public.usage_events(tests.t59_hold('job-1'))), 0,
  'Mallory, holding the row of Jon''s hold, gets no usage event through it (the view''s RLS applies)');
select is((select count(*)::int from public.credit_holds(tests.t59_event((tests.t59_hold('job-1')).usage_event_id))), 0,
  'nor the hold through the row of its usage event (credit_holds'' RLS applies)');
select tests.authenticate_as('t59_ivy');
select is((select count(*)::int from public.usage_events(tests.t59_hold('job-1'))), 1,
  'Ivy, the owner, sees the usage event of her member''s job');
select tests.authenticate_as_anon();
select throws_ok($$ select * from public.usage_events(tests.t59_hold('job-1')) $$, '42501', null,
  'the anon key cannot call the embedding functions');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- The shape PostgREST reads a computed relationship from
-- ---------------------------------------------------------------------------
select is(
  (select (p.pronargs, p.proargtypes[0]::regtype::text, p.proretset, p.prorows::int, p.provolatile::text, p.prosecdef)::text
     from pg_catalog.pg_proc p where p.oid = 'public.usage_events(public.credit_holds)'::regprocedure),
  '(1,credit_holds,t,1,s,f)',
  'usage_events(credit_holds): one argument of the hold row type, a set of one row (to-one), stable, runs as the caller');
select is(
  (select p.prorettype::regtype::text from pg_catalog.pg_proc p
    where p.oid = 'public.usage_events(public.credit_holds)'::regprocedure),
  'usage_events', 'it returns rows of the usage_events view (the embedded resource)');
select is(
  (select (p.pronargs, p.proargtypes[0]::regtype::text, p.proretset, p.prorows > 1, p.provolatile::text, p.prosecdef,
           p.prorettype::regtype::text)::text
     from pg_catalog.pg_proc p where p.oid = 'public.credit_holds(public.usage_events)'::regprocedure),
  '(1,usage_events,t,t,s,f,credit_holds)',
  'credit_holds(usage_events): one argument of the event row type, a set of holds (to-many, as the foreign key made it)');
select is(tests.wallet_invariant(tests.account_id('t59-team')), 'ok', 'the wallet still equals its ledger and its lots');

select * from finish();
rollback;
