-- Undoes bench/webhook_floor_setup.sql.
alter table public.payments enable trigger user;
alter table ledger.lots enable trigger user;
alter table ledger.entries enable trigger user;
alter table public.audit_log enable trigger user;
drop table private.floor_tpl;
drop table private.floor_base;
