-- For the webhook floor (bench/README.md, "The webhook figure: what the writes alone cost"), on a
-- database kept by `npm run bench -- --only=webhook --keep`, as its superuser:
--   psql <url> -f bench/webhook_floor_setup.sql
--   pgbench -n -M prepared -c 8 -j 2 -T 10 -f bench/webhook_raw_insert.sql <url>   # the baseline's write
--   pgbench -n -M prepared -c 8 -j 2 -T 10 -f bench/webhook_floor.sql <url>        # the rows an invoice writes
--   pgbench -n -M prepared -c 8 -j 2 -T 10 -D accounts=200 -f bench/webhook_receive.sql <url>  # the real thing
--   psql <url> -f bench/webhook_floor_teardown.sql
-- Templates: the rows the last paid invoice of the webhook bench wrote. The tables' own triggers
-- (the audit entry of the payment, the outgoing events, the granted-credits notice) are switched
-- off while the floor runs: the floor writes each row itself, once, with no rule checked.
create table private.floor_tpl as
select (select id from public.webhook_events order by id desc limit 1) as we,
       (select id from public.payments where stripe_invoice_id is not null order by created_at desc limit 1) as pay,
       (select id from ledger.lots where payment_id is not null order by seq desc limit 1) as lot,
       (select id from ledger.entries where payment_id is not null order by id desc limit 1) as ent,
       (select id from public.audit_log where action = 'payment.paid' order by id desc limit 1) as aud;
create table private.floor_base (event_id text primary key, payload jsonb not null);
alter table private.floor_base enable row level security;
alter table public.payments disable trigger user;
alter table ledger.lots disable trigger user;
alter table ledger.entries disable trigger user;
alter table public.audit_log disable trigger user;
