-- The webhook baseline's write alone: the raw event (the payload of a real invoice.paid)
-- inserted into a table. See bench/webhook_floor_setup.sql.
\set u random(1, 2000000000)
insert into private.floor_base (event_id, payload)
select 'evt_base_' || :client_id || '_' || :u || '_' || txid_current(), w.payload
from public.webhook_events w where w.id = (select we from private.floor_tpl);
