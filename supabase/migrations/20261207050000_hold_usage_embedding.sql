-- A hold and its usage event embed in each other through the API again.
--
-- Until usage events became entries of the ledger (20261206010000_credit_engine_v2),
-- credit_holds.usage_event_id was a foreign key to the usage_events table, and a client could
-- embed one in the other:
--
--   supabase.from('credit_holds').select('*, usage_events(*)')   -- the capture's event, an object
--   supabase.from('usage_events').select('*, credit_holds(*)')   -- the hold it captured, a list
--
-- usage_events is now a view, and a view has no foreign keys; a key from credit_holds to
-- ledger.entries would lock the entry at every capture. PostgREST's computed relationships
-- (a function named after the embedded resource, taking the row of the other) give both
-- embeddings back with the same names and shapes: `rows 1` makes the first a to-one, the
-- second stays a to-many. Both run as the caller, so the row-level security of the view
-- (ledger.entries) and of credit_holds decides what is seen, as before.

-- ---------------------------------------------------------------------------
-- credit_holds -> usage_events (to-one)
-- ---------------------------------------------------------------------------
create function public.usage_events(hold public.credit_holds)
returns setof public.usage_events
rows 1
language sql
stable
set search_path = ''
as $$
  select e.* from public.usage_events e where e.id = hold.usage_event_id
$$;
comment on function public.usage_events(public.credit_holds) is
  'The usage event a captured hold recorded (none while it is held or when it was released or expired). A computed relationship: credit_holds?select=*,usage_events(*) embeds it as an object. Runs as the caller (row-level security applies).';

-- ---------------------------------------------------------------------------
-- usage_events -> credit_holds (to-many, as the foreign key made it)
-- ---------------------------------------------------------------------------
create function public.credit_holds(event public.usage_events)
returns setof public.credit_holds
language sql
stable
set search_path = ''
as $$
  select h.* from public.credit_holds h where h.usage_event_id = event.id
$$;
comment on function public.credit_holds(public.usage_events) is
  'The hold whose capture recorded this usage event (empty for a consumption without a hold). A computed relationship: usage_events?select=*,credit_holds(*) embeds it as a list. Runs as the caller (row-level security applies).';

-- ---------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------
revoke execute on function public.usage_events(public.credit_holds) from public, anon;
revoke execute on function public.credit_holds(public.usage_events) from public, anon;
grant execute on function public.usage_events(public.credit_holds) to authenticated, service_role;
grant execute on function public.credit_holds(public.usage_events) to authenticated, service_role;
