-- The audit chain (docs/audit.md#the-chain): entries are written unsealed, a sealer links them,
-- and private.verify_audit_chain() names every kind of tampering with a sealed entry (edit,
-- delete, insert, reorder, cut tail), all of them at once, never an unsealed entry. With a
-- key, an owner without it cannot re-hash an edit into the chain.
-- Personas: a billing server (private.audit), the table owner who tampers (the trigger
-- switched off), the service role.
begin;
select plan(36);

-- ---------------------------------------------------------------------------
-- Written, not yet sealed
-- ---------------------------------------------------------------------------
select private.seal_audit_log();  -- whatever the seed left, so the entries below are the tail
create table tests.chain_start as select position as p from private.audit_head();

select private.audit('payment.succeeded', 'payment', 'pi_chain_' || n, null, null, jsonb_build_object('n', n))
from generate_series(1, 6) n;

select is((select count(*)::int from public.audit_log where entity_id like 'pi_chain_%'
            and sealed_at is null and position is null and prev_hash is null and hash is null and writer_xid is not null),
  6, 'a written entry carries its writer''s transaction and no position or hash yet: it is unsealed');
select is((select position from private.audit_head()), (select p from tests.chain_start),
  'writing does not move the head');
select is_empty($$ select * from private.verify_audit_chain() $$, 'unsealed entries are not breaks');

-- ---------------------------------------------------------------------------
-- Sealed
-- ---------------------------------------------------------------------------
select is(private.seal_audit_log(), 6, 'the sealer links the six entries (the caller''s own transaction included)');
select is(private.seal_audit_log(), 0, 'a second run has nothing left to seal');

-- Slot n (1..6) of this story is chain position start + n.
create function tests.at(n int) returns bigint language sql stable set search_path = '' as $$
  select p + n from tests.chain_start
$$;
create table tests.sealed as select a.* from public.audit_log a where a.entity_id like 'pi_chain_%';
create function tests.id_at(n int) returns bigint language sql stable set search_path = '' as $$
  select s.id from tests.sealed s where s.position = tests.at(n)
$$;
select results_eq(
  $$ select position, after ->> 'n' from public.audit_log where entity_id like 'pi_chain_%' order by position $$,
  $$ select tests.at(n), n::text from generate_series(1, 6) n $$,
  'sealed entries take the next consecutive positions, in the order they were written');
select ok((select bool_and(s.prev_hash = p.hash) from tests.sealed s join public.audit_log p on p.position = s.position - 1),
  'each sealed entry holds the hash of the entry before it');
select results_eq($$ select position, hash, entry_id from private.audit_head() $$,
  $$ select position, hash, id from tests.sealed where position = tests.at(6) $$,
  'the head (private.audit_head) holds the last position, its hash and its entry');
select is(
  (select hash from tests.sealed where position = tests.at(1)),
  (select encode(extensions.digest(a.prev_hash || jsonb_build_object(
     'id', a.id, 'occurred_at', to_char(a.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
     'actor_user_id', a.actor_user_id, 'actor_role', a.actor_role, 'account_id', a.account_id, 'action', a.action,
     'entity', a.entity, 'entity_id', a.entity_id, 'before', a.before, 'after', a.after, 'ip', a.ip,
     'user_agent', a.user_agent, 'writer_xid', a.writer_xid::text,
     'sealed_at', to_char(a.sealed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'sha256'), 'hex')
   from tests.sealed a where a.position = tests.at(1)),
  'without a key the hash is sha256 of prev_hash and the canonical JSON of the entry: anyone can recompute it');
select is_empty($$ select * from private.verify_audit_chain() $$, 'the sealed chain is intact');
select is(
  (select (after ->> 'legacy_chain_intact') || ' ' || (sealed_at is not null)::text from public.audit_log where action = 'audit_log.migrated'),
  'true true',
  'the upgrade verified the entries of the previous chain along their links, sealed them and recorded its verdict in the chain');

-- ---------------------------------------------------------------------------
-- Append-only stays: sealing is the only change, and only the sealer's
-- ---------------------------------------------------------------------------
select throws_ok($$ update public.audit_log set hash = repeat('0', 64) where position = tests.at(1) $$,
  '42501', 'permission denied', 'not even the table owner can change a sealed entry''s hash');
select private.audit('payment.succeeded', 'payment', 'pi_chain_late', null, null, '{"n": 7}');
select throws_ok(
  $$ update public.audit_log set after = '{"n": 70}', position = 0, prev_hash = repeat('0', 64), hash = repeat('0', 64), sealed_at = now()
     where entity_id = 'pi_chain_late' $$,
  '42501', 'permission denied', 'nor seal an entry with changed content');
select tests.authenticate_as_service_role();
select throws_ok($$ select private.seal_audit_log() $$, '42501', null, 'the service role cannot run the sealer');
select throws_ok($$ update public.audit_log set sealed_at = null $$, '42501', null, 'the service role cannot unseal entries');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Tampering with sealed entries (the table owner, append-only trigger off), each undone
-- ---------------------------------------------------------------------------
alter table public.audit_log disable trigger audit_log_append_only;
-- Puts slot n back as it was sealed.
create function tests.restore(n int) returns void language sql set search_path = '' as $$
  delete from public.audit_log a where a.id = tests.id_at(n);
  insert into public.audit_log overriding system value select s.* from tests.sealed s where s.position = tests.at(n);
$$;

-- An unsealed entry is not yet protected: changing it is no break (it is sealed as it then is).
update public.audit_log set after = '{"n": 77}' where entity_id = 'pi_chain_late';
select is_empty($$ select * from private.verify_audit_chain() $$, 'an edited unsealed entry is never reported as broken');

-- Edit
update public.audit_log set after = '{"n": 200}' where id = tests.id_at(2);
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(2), tests.id_at(2), 'edited') $$,
  'an edited entry is reported as edited at its position');
-- ... and re-hashed by someone who can compute sha256: the next link no longer fits.
update public.audit_log a set hash = private.audit_entry_digest(a, null) where id = tests.id_at(2);
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(2), tests.id_at(2), 'edited') $$,
  'an edited entry whose hash was recomputed is still reported as edited: the entry after it points at the old hash');
select tests.restore(2);
select is_empty($$ select * from private.verify_audit_chain() $$, 'with the original content back the chain is whole again');

-- Backdating is an edit too.
update public.audit_log set occurred_at = occurred_at - interval '1 day' where id = tests.id_at(4);
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(4), tests.id_at(4), 'edited') $$, 'a backdated entry is reported as edited');
select tests.restore(4);

-- Delete
delete from public.audit_log where id = tests.id_at(3);
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(3), null::bigint, 'deleted') $$,
  'a deleted entry is reported as deleted at the position it held');
select tests.restore(3);

-- Insert: a forged entry given a sealed position and a well-formed hash.
insert into public.audit_log (actor_role, action, entity, entity_id, after, position, prev_hash, hash, sealed_at)
select 'system', 'payment.refunded', 'payment', 'pi_chain_forged', '{"amount_cents": 500}', tests.at(3),
       (select hash from tests.sealed where position = tests.at(2)), repeat('f', 64), now();
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ select tests.at(3), id, 'inserted' from public.audit_log where entity_id = 'pi_chain_forged' $$,
  'an entry slipped in at a sealed position is reported as inserted');
delete from public.audit_log where entity_id = 'pi_chain_forged';
insert into public.audit_log (actor_role, action, entity, entity_id, position, prev_hash, hash, sealed_at)
select 'system', 'payment.refunded', 'payment', 'pi_chain_forged', tests.at(6) + 1,
       (select hash from tests.sealed where position = tests.at(6)), repeat('f', 64), now();
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ select tests.at(6) + 1, id, 'inserted' from public.audit_log where entity_id = 'pi_chain_forged' $$,
  'an entry appended behind the head''s back is reported as inserted');
delete from public.audit_log where entity_id = 'pi_chain_forged';

-- Reorder: two entries swap places.
update public.audit_log set position = case when id = tests.id_at(2) then tests.at(3) else tests.at(2) end
where id in (tests.id_at(2), tests.id_at(3));
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(2), tests.id_at(3), 'reordered'), (tests.at(3), tests.id_at(2), 'reordered'),
            (tests.at(4), tests.id_at(4), 'reordered') $$,
  'swapped entries are reported as reordered: each entry that no longer follows the one it was sealed after');
select tests.restore(2);
select tests.restore(3);

-- Cut: the newest sealed entries removed; the head, kept apart, still expects them.
delete from public.audit_log where id in (tests.id_at(5), tests.id_at(6));
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(5), null::bigint, 'cut') $$,
  'a cut-off tail is reported as cut from the first missing position');
select tests.restore(5);
select tests.restore(6);

-- Two tamperings at once: both are reported, in position order.
update public.audit_log set entity_id = 'pi_other' where id = tests.id_at(2);
delete from public.audit_log where id = tests.id_at(4);
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(2), tests.id_at(2), 'edited'), (tests.at(4), null::bigint, 'deleted') $$,
  'an edit and a deletion at once are both reported, not only the first');
select tests.restore(2);
select tests.restore(4);
select is_empty($$ select * from private.verify_audit_chain() $$, 'everything undone, the chain is intact');
alter table public.audit_log enable trigger audit_log_append_only;

-- ---------------------------------------------------------------------------
-- A key the table owner does not hold
-- ---------------------------------------------------------------------------
select set_config('ledgerbase.audit_chain_key', 'chain-key-held-outside-the-tables', true);
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (null::bigint, null::bigint, 'unkeyed') $$,
  'a key is configured but the chain is not hashed with it: reported as unkeyed');
select ok(private.key_audit_chain() > 6, 'adopting the key re-hashes every sealed entry');
select is_empty($$ select * from private.verify_audit_chain() $$, 'the keyed chain verifies with the key');
select is(
  (select hash from public.audit_log where id = tests.id_at(1)),
  (select private.audit_entry_digest(a, 'chain-key-held-outside-the-tables') from public.audit_log a where a.id = tests.id_at(1)),
  'the hash is now an HMAC with the key');

-- The owner without the key edits an entry and recomputes its hash as sha256: caught.
alter table public.audit_log disable trigger audit_log_append_only;
update public.audit_log set after = '{"n": 300}' where id = tests.id_at(3);
update public.audit_log a set hash = private.audit_entry_digest(a, null) where id = tests.id_at(3);
select results_eq($$ select * from private.verify_audit_chain() $$,
  $$ values (tests.at(3), tests.id_at(3), 'edited') $$,
  'without the key a forged hash does not verify');
update public.audit_log a set after = s.after from tests.sealed s where a.id = tests.id_at(3) and s.id = a.id;
update public.audit_log a set hash = private.audit_entry_digest(a, 'chain-key-held-outside-the-tables') where a.id = tests.id_at(3);
alter table public.audit_log enable trigger audit_log_append_only;

-- New entries are sealed with the key.
select private.seal_audit_log();
select is_empty($$ select * from private.verify_audit_chain() $$, 'entries sealed with the key verify with it');

-- Restored from another database (pg_dump into a new project): the writer's id lies beyond
-- every transaction of this one, which cannot be still running.
insert into public.audit_log (actor_role, action, entity, entity_id, writer_xid)
values ('system', 'payment.succeeded', 'payment', 'pi_restored', (pg_current_xact_id()::text::bigint + 1000000)::text::xid8);
select is(private.seal_audit_log(), 1, 'an unsealed entry restored from another database is sealed, not left waiting');

-- Without the key a keyed chain can be neither sealed nor verified (entries wait unsealed).
select set_config('ledgerbase.audit_chain_key', '', true);
select throws_ok($$ select private.seal_audit_log() $$, '55000', 'audit_chain_key_missing',
  'the sealer refuses to extend a keyed chain without the key');
select throws_ok($$ select * from private.verify_audit_chain() $$, '55000', 'audit_chain_key_missing',
  'and verifying a keyed chain needs the key');

select * from finish();
rollback;
