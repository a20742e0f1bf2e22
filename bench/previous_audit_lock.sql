-- For comparison only (npm run bench -- --only=audit,webhook --apply=bench/previous_audit_lock.sql):
-- puts back what the previous audit chain did for every entry written, the global advisory
-- lock and the head row's lock, both held until the writer commits. Never apply it elsewhere.
create or replace function private.bench_old_audit_link() returns trigger language plpgsql set search_path = '' as $$
declare head private.audit_chain_head;
begin
  -- What the previous chain did per entry: the global lock and the head row, held to commit.
  perform pg_catalog.pg_advisory_xact_lock(7400100100);
  select h.* into head from private.audit_chain_head h where h.singleton for update;
  perform private.audit_entry_digest(new, null);
  update private.audit_chain_head h set last_id = h.last_id where h.singleton;
  return new;
end $$;
create trigger bench_old_link before insert on public.audit_log for each row execute function private.bench_old_audit_link();
