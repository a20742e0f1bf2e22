-- The rows one paid subscription invoice writes, each copied from the row the webhook path
-- wrote (bench/webhook_floor_setup.sql), for an account of 200, with no rule checked: the
-- event ledger, the payment, the lot, the ledger entry, the wallet and the audit entry, with
-- their indexes, checks and foreign keys. See bench/webhook_floor_setup.sql.
\set n random(1, 200)
\set u random(1, 2000000000)
begin;
insert into public.webhook_events overriding user value select r.* from public.webhook_events w, jsonb_populate_record(null::public.webhook_events, to_jsonb(w) - 'id' || jsonb_build_object('event_id', 'evt_floor_' || :client_id || '_' || :u || '_' || txid_current())) r where w.id = (select we from private.floor_tpl);
insert into public.payments select r.* from public.payments p, jsonb_populate_record(null::public.payments, to_jsonb(p) || jsonb_build_object('account_id', ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')), 'id', gen_random_uuid(), 'stripe_invoice_id', 'in_floor_' || :client_id || '_' || :u || '_' || txid_current())) r where p.id = (select pay from private.floor_tpl);
insert into ledger.lots (account_id, source, amount, remaining, expires_at, payment_id, idempotency_key, metadata, created_at) select ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, l.source, l.amount, l.remaining, l.expires_at, l.payment_id, 'floor_' || :client_id || '_' || :u || '_' || txid_current(), l.metadata, l.created_at from ledger.lots l where l.id = (select lot from private.floor_tpl);
insert into ledger.entries overriding user value select r.* from ledger.entries e, jsonb_populate_record(null::ledger.entries, to_jsonb(e) - 'id' - 'writer_xid' || jsonb_build_object('account_id', ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')), 'idempotency_key', 'floor_' || :client_id || '_' || :u || '_' || txid_current())) r where e.id = (select ent from private.floor_tpl);
update public.credit_balances set balance = balance + 100 where account_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid;
insert into public.audit_log overriding user value select r.* from public.audit_log a, jsonb_populate_record(null::public.audit_log, to_jsonb(a) - 'id' - 'writer_xid' - 'position' - 'sealed_at' - 'hash' - 'prev_hash' || jsonb_build_object('account_id', ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')))) r where a.id = (select aud from private.floor_tpl);
commit;
