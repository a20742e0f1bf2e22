-- Audit chain: writers append, a sealer links (SPEC §4.6, amended).
--
-- Before: a BEFORE INSERT trigger linked every entry under one global lock held until the
-- writer committed, so every money event queued on it, and ids (taken before the lock)
-- did not follow the chain: concurrent writers produced false breaks.
--
-- Now, as in a certificate-transparency log:
--   writers   private.audit(...) (unchanged signature) inserts the entry with the writer's
--             transaction id (writer_xid) and nothing else: no lock, no hash.
--   sealer    private.seal_audit_log() links, in batches, the entries whose writing
--             transactions have all finished (writer_xid below the oldest running
--             transaction): consecutive positions, prev_hash, hash, sealed_at. An entry
--             written later can only be sealed after every sealed one, so no commit can
--             ever come in front of a sealed entry. Only sealers serialize (an advisory
--             lock and the head row); writers never wait for them.
--   head      private.audit_chain_head (a private table the sealer updates with the chain)
--             holds the last position and hash; private.audit_head() reads it for
--             anchoring elsewhere. A cut-off tail shows against it.
--   key       the hash is an HMAC-SHA256 when a key is configured outside the audit tables
--             (Vault secret audit_chain_key on hosted Supabase, else the setting
--             ledgerbase.audit_chain_key), a plain sha256 without one.
--   verify    private.verify_audit_chain() returns a row per break (position, entry_id,
--             kind: edited, deleted, inserted, reordered, cut, unkeyed); none when intact.
--
-- Existing entries are verified along their old links and sealed into the new chain, in
-- the order they were linked, by this migration, which records the verdict as an entry.

-- ---------------------------------------------------------------------------
-- The legacy chain, verified along its links before anything changes
-- ---------------------------------------------------------------------------
create temporary table legacy_audit_chain as
  select a.id, a.prev_hash, a.hash, private.audit_entry_hash(a) = a.hash as valid
  from public.audit_log a;
create index on legacy_audit_chain (prev_hash);
create temporary table legacy_audit_order as
  with recursive walk (id, hash, n) as (
    select l.id, l.hash, 1::bigint from legacy_audit_chain l where l.prev_hash = repeat('0', 64)
    union all
    select l.id, l.hash, w.n + 1 from walk w join legacy_audit_chain l on l.prev_hash = w.hash
  )
  select id, hash, n from walk;

-- ---------------------------------------------------------------------------
-- The table: entries carry their writer; the sealer fills in the rest
-- ---------------------------------------------------------------------------
drop trigger audit_log_link on public.audit_log;
drop function private.audit_link();

alter table public.audit_log
  add column writer_xid xid8,
  add column position bigint,
  add column sealed_at timestamptz,
  alter column prev_hash drop not null,
  alter column hash drop not null,
  drop constraint audit_log_hash_key;
alter table public.audit_log alter column writer_xid set default pg_catalog.pg_current_xact_id();

comment on column public.audit_log.writer_xid is 'The transaction that wrote the entry (pg_current_xact_id()); null for entries older than the sealer. The sealer links an entry once every transaction up to this one has finished.';
comment on column public.audit_log.position is 'Place in the chain (1, 2, 3, ... without gaps), given by the sealer; null until sealed.';
comment on column public.audit_log.sealed_at is 'When the sealer linked the entry into the chain; null means written but not yet sealed (sealed within the delay the README states).';
comment on column public.audit_log.prev_hash is 'The hash of the entry at the position before (64 zeros for position 1); null until sealed.';
comment on column public.audit_log.hash is 'HMAC-SHA256 (with the audit chain key) or sha256 (without) of prev_hash followed by the canonical JSON of the entry, hex; null until sealed.';
comment on table public.audit_log is
  'Who did what, when, from where: memberships, roles, invitations, API keys, staff credit adjustments, catalog, account deletion, subscriptions, payments, refunds and disputes. Append-only for every role. Entries are written without any lock and sealed into a hash chain shortly after (private.seal_audit_log); private.verify_audit_chain() reports any later change to a sealed entry. Members with audit.read read their account''s entries, staff admins all.';

create index audit_log_unsealed_idx on public.audit_log (writer_xid, id) where position is null;
create index audit_log_position_idx on public.audit_log (position) where position is not null;

alter table private.audit_chain_head
  add column last_position bigint not null default 0 check (last_position >= 0),
  add column keyed boolean not null default false,
  add column sealed_at timestamptz;
comment on table private.audit_chain_head is
  'The end of the sealed audit chain: last position, entry id and hash, whether the chain is keyed (HMAC). Kept apart from audit_log so a cut-off tail shows; its row lock (with an advisory lock) serializes sealers only.';
comment on column private.audit_chain_head.keyed is 'True once the chain is hashed with the audit chain key (private.key_audit_chain); from then on sealing and verifying need the key.';

-- ---------------------------------------------------------------------------
-- The key and the hash
-- ---------------------------------------------------------------------------
create or replace function private.audit_chain_key()
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  key text;
begin
  -- Hosted Supabase: a Vault secret, outside the audit tables and out of database dumps.
  if pg_catalog.to_regclass('vault.decrypted_secrets') is not null then
    -- Dynamic: the vault schema does not exist everywhere (local stacks, tests).
    execute pg_catalog.format('select s.decrypted_secret from %I.decrypted_secrets s where s.name = $1 limit 1', 'vault')
      into key using 'audit_chain_key';
  end if;
  return coalesce(nullif(key, ''), nullif(pg_catalog.current_setting('ledgerbase.audit_chain_key', true), ''));
end
$$;
comment on function private.audit_chain_key() is
  'The audit chain key: the Vault secret named audit_chain_key when Vault is installed, else the setting ledgerbase.audit_chain_key; null when neither is set (plain sha256).';

create or replace function private.audit_entry_digest(entry public.audit_log, key text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  -- jsonb prints keys in a fixed order; times are printed in UTC so the digest does not
  -- depend on the session's TimeZone. The position is not hashed: the links are the order.
  payload text := coalesce(entry.prev_hash, '') || pg_catalog.jsonb_build_object(
    'id', entry.id,
    'occurred_at', pg_catalog.to_char(entry.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'actor_user_id', entry.actor_user_id,
    'actor_role', entry.actor_role,
    'account_id', entry.account_id,
    'action', entry.action,
    'entity', entry.entity,
    'entity_id', entry.entity_id,
    'before', entry.before,
    'after', entry.after,
    'ip', entry.ip,
    'user_agent', entry.user_agent,
    'writer_xid', entry.writer_xid::text,
    'sealed_at', pg_catalog.to_char(entry.sealed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  )::text;
begin
  if key is null then
    return pg_catalog.encode(extensions.digest(payload, 'sha256'), 'hex');
  end if;
  return pg_catalog.encode(extensions.hmac(payload, key, 'sha256'), 'hex');
end
$$;
comment on function private.audit_entry_digest(public.audit_log, text) is
  'The hash of a sealed entry: HMAC-SHA256 with key (sha256 when key is null), hex, of prev_hash followed by the canonical JSON of every column but position and hash.';

-- ---------------------------------------------------------------------------
-- Writing entries: no lock, no hash
-- ---------------------------------------------------------------------------
create or replace function private.audit(
  action text,
  entity text,
  entity_id text default null,
  account_id uuid default null,
  before jsonb default null,
  after jsonb default null
) returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.audit_log (occurred_at, actor_user_id, actor_role, account_id, action, entity, entity_id,
                                before, after, ip, user_agent)
  values (private.now(), auth.uid(), private.actor_role(), audit.account_id, audit.action, audit.entity,
          left(audit.entity_id, 200), audit.before, audit.after,
          left(private.request_ip(), 64), left(private.request_header('user-agent'), 512));
end
$$;
comment on function private.audit(text, text, text, uuid, jsonb, jsonb) is
  'Appends one audit entry: actor = auth.uid() and the API role (system when none), ip and user agent from request.headers, the writing transaction in writer_xid. Takes no lock: private.seal_audit_log links it into the chain after the transaction ends. Called by the audit triggers, the RPCs and billing (subscriptions, payments, refunds, disputes). action is <entity>.<verb>.';

-- Append-only: the only change ever made to an entry is its sealing (or re-keying).
create or replace function private.refuse_audit_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    if (old.id, old.occurred_at, old.actor_user_id, old.actor_role, old.account_id, old.action, old.entity,
        old.entity_id, old.before, old.after, old.ip, old.user_agent, old.writer_xid)
       is not distinct from
       (new.id, new.occurred_at, new.actor_user_id, new.actor_role, new.account_id, new.action, new.entity,
        new.entity_id, new.before, new.after, new.ip, new.user_agent, new.writer_xid) then
      if old.position is null then
        return new;  -- sealing an entry
      end if;
      if pg_catalog.current_setting('ledgerbase.audit_rekeying', true) = 'on'
         and old.position = new.position and old.sealed_at = new.sealed_at then
        return new;  -- private.key_audit_chain re-hashing with the key
      end if;
    end if;
  end if;
  raise exception using errcode = '42501', message = 'permission denied',
    detail = 'public.audit_log is append-only';
end
$$;
comment on function private.refuse_audit_change() is
  'Trigger: refuses UPDATE, DELETE and TRUNCATE on audit_log, for every role and in every context (no cascade exception). The one update let through leaves the content as it is and seals an unsealed entry (or re-hashes a sealed one inside private.key_audit_chain).';

-- ---------------------------------------------------------------------------
-- The sealer
-- ---------------------------------------------------------------------------
create or replace function private.lock_audit_chain()
returns private.audit_chain_head
language plpgsql
set search_path = ''
as $$
declare
  head private.audit_chain_head;
begin
  -- Sealers only: writers never take either lock. The head row lock also makes a sealer
  -- in a REPEATABLE READ transaction fail (40001) rather than fork the chain.
  perform pg_catalog.pg_advisory_xact_lock(7400100101);
  select h.* into head from private.audit_chain_head h where h.singleton for update;
  return head;
end
$$;
comment on function private.lock_audit_chain() is 'Takes the sealer''s lock (advisory, then the head row) for the rest of the transaction and returns the head.';

create or replace function private.chain_key(head private.audit_chain_head)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  key text := private.audit_chain_key();
begin
  if head.keyed and key is null then
    raise exception using errcode = '55000', message = 'audit_chain_key_missing',
      detail = 'the audit chain is keyed: set the Vault secret audit_chain_key (or ledgerbase.audit_chain_key) to seal or verify it',
      hint = 'until the key is back, entries are kept unsealed and nothing is lost';
  end if;
  return case when head.keyed then key end;
end
$$;
comment on function private.chain_key(private.audit_chain_head) is
  'The key the chain is hashed with: the audit chain key when the head says keyed (raises 55000 audit_chain_key_missing when it is not configured), else null (sha256).';

create or replace function private.seal_audit_log(max_entries integer default 10000)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  own xid8 := pg_catalog.pg_current_xact_id_if_assigned();
  head private.audit_chain_head;
  key text;
  stamp timestamptz := pg_catalog.now();
  entry public.audit_log;
  prev text;
  pos bigint;
  ids bigint[] := array[]::bigint[];
  prevs text[] := array[]::text[];
  hashes text[] := array[]::text[];
  positions bigint[] := array[]::bigint[];
begin
  if max_entries is null or max_entries < 1 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'max_entries must be at least 1';
  end if;
  head := private.lock_audit_chain();
  key := private.chain_key(head);
  prev := head.last_hash;
  pos := head.last_position;

  -- Only entries whose writing transaction, and every transaction before it, has finished:
  -- below the oldest running transaction id (the snapshot's xmin) nothing can still commit,
  -- so nothing sealed later can belong in front. The caller's own entries are sealed too
  -- (they are visible to it and would otherwise wait for its own commit). A visible entry
  -- at or above the snapshot's xmax was not written by a transaction of this database (a
  -- restore from another one): finished too. pg_current_snapshot() is this statement's.
  for entry in
    select a.* from public.audit_log a, (select pg_catalog.pg_current_snapshot() as s) snap
    where a.position is null
      and (a.writer_xid is null or a.writer_xid = own
           or a.writer_xid < pg_catalog.pg_snapshot_xmin(snap.s)
           or a.writer_xid >= pg_catalog.pg_snapshot_xmax(snap.s))
    order by a.writer_xid nulls first, a.id
    limit max_entries
  loop
    pos := pos + 1;
    entry.prev_hash := prev;
    entry.sealed_at := stamp;
    prev := private.audit_entry_digest(entry, key);
    ids := ids || entry.id;
    prevs := prevs || entry.prev_hash;
    hashes := hashes || prev;
    positions := positions || pos;
  end loop;
  if pos = head.last_position then
    return 0;
  end if;

  update public.audit_log a
     set position = s.position, prev_hash = s.prev_hash, hash = s.hash, sealed_at = stamp
    from unnest(ids, positions, prevs, hashes) as s (id, position, prev_hash, hash)
   where a.id = s.id;
  update private.audit_chain_head h
     set last_position = pos, last_id = ids[pg_catalog.array_length(ids, 1)], last_hash = prev, sealed_at = stamp
   where h.singleton;
  return pos - head.last_position;
end
$$;
comment on function private.seal_audit_log(integer) is
  'Links up to max_entries unsealed audit entries into the chain (position, prev_hash, hash, sealed_at) in (writer transaction, id) order: those whose writing transactions have all finished, and the caller''s own. Safe to run concurrently (sealers take turns); writers never wait for it. Returns how many it sealed. Run every few seconds (pg_cron, see README).';

-- ---------------------------------------------------------------------------
-- Verifying
-- ---------------------------------------------------------------------------
create or replace function private.verify_audit_chain_with(key text)
returns table ("position" bigint, entry_id bigint, kind text)
language sql
stable
set search_path = ''
as $$
  -- One statement, one snapshot: a sealer committing meanwhile cannot make a false break.
  with head as (
    select h.last_position, h.last_hash from private.audit_chain_head h where h.singleton
  ), sealed as (
    select a.id, a.position, a.prev_hash, a.hash, private.audit_entry_digest(a, key) is not distinct from a.hash as valid
    from public.audit_log a where a.position is not null
  ), referenced as (
    select distinct s.prev_hash from sealed s
  ), ranked as (
    -- Two entries at one position: the chain's own is the one the next entry (or the head)
    -- points at; the other was inserted.
    select s.*, row_number() over (partition by s.position order by
             (s.hash in (select r.prev_hash from referenced r)
              or (s.position = h.last_position and s.hash = h.last_hash)) desc,
             s.valid desc, s.id) as rank
    from sealed s, head h
  ), chain as (
    select r.id, r.position, r.prev_hash, r.hash, r.valid
    from ranked r, head h where r.rank = 1 and r.position between 1 and h.last_position
  ), owners as (
    select c.hash, min(c.position) as position from chain c group by c.hash
  ), walk as (
    select c.*,
           coalesce(lag(c.position) over w, 0) as prev_position,
           coalesce(lag(c.hash) over w, repeat('0', 64)) as prev_row_hash,
           lag(c.id) over w as prev_id,
           (lag(c.hash) over w) in (select r.prev_hash from referenced r) as prev_referenced
    from chain c
    window w as (order by c.position)
  ), breaks as (
    -- Not in the chain: a second entry at a position, or one beyond the head.
    select r.position, r.id as entry_id, 'inserted' as kind, 1 as priority
    from ranked r, head h where r.rank > 1 or r.position not between 1 and h.last_position
    union all
    -- Content that no longer hashes to what was sealed.
    select c.position, c.id, 'edited', 2 from chain c where not c.valid
    union all
    -- Links: each entry must follow the one before it.
    select case
             when w.position > w.prev_position + 1 then w.prev_position + 1
             when o.position is null and w.prev_id is not null then w.prev_position
             when o.position = w.position - 2 and not coalesce(w.prev_referenced, false) then w.prev_position
             else w.position
           end,
           case
             when w.position > w.prev_position + 1 then null
             when o.position is null and w.prev_id is not null then w.prev_id
             when o.position = w.position - 2 and not coalesce(w.prev_referenced, false) then w.prev_id
             else w.id
           end,
           case
             -- a gap: entries missing in between
             when w.position > w.prev_position + 1 then 'deleted'
             -- the entry before is not the one this entry was linked to (edited and re-hashed)
             when o.position is null and w.prev_id is not null then 'edited'
             when o.position is null then 'edited'
             -- this entry points past the one before, which nothing points at: that one was slipped in
             when o.position = w.position - 2 and not coalesce(w.prev_referenced, false) then 'inserted'
             else 'reordered'
           end,
           case when o.position = w.position - 2 and not coalesce(w.prev_referenced, false) then 1 else 3 end
    from walk w left join owners o on o.hash = w.prev_hash
    where w.position > w.prev_position + 1 or w.prev_hash <> w.prev_row_hash
    union all
    -- The tail: the head remembers the last position and its hash.
    select l.last_sealed + 1, null, 'cut', 3
    from (select coalesce(max(c.position), 0) as last_sealed from chain c) l, head h
    where l.last_sealed < h.last_position
    union all
    select c.position, c.id, 'edited', 2
    from chain c, head h where c.position = h.last_position and c.hash <> h.last_hash
  )
  select distinct on (b.position, b.entry_id) b.position, b.entry_id, b.kind
  from breaks b
  order by b.position, b.entry_id, b.priority
$$;
comment on function private.verify_audit_chain_with(text) is
  'The breaks of the sealed audit chain when hashed with key (null: sha256); see private.verify_audit_chain.';

drop function private.verify_audit_chain();
create function private.verify_audit_chain()
returns table ("position" bigint, entry_id bigint, kind text)
language plpgsql
stable
set search_path = ''
as $$
declare
  head private.audit_chain_head;
begin
  select h.* into head from private.audit_chain_head h where h.singleton;
  -- A key is configured but the chain is not hashed with it: anyone holding the table could
  -- have rewritten it (or stripped the key from it).
  if not head.keyed and private.audit_chain_key() is not null then
    return query select null::bigint, null::bigint, 'unkeyed'::text;
  end if;
  return query select v.position, v.entry_id, v.kind from private.verify_audit_chain_with(private.chain_key(head)) v;
end
$$;
comment on function private.verify_audit_chain() is
  'Checks every sealed audit entry and returns a row per break, in position order; nothing when the chain is intact. kind: edited (content or hash changed; for a re-hashed entry, reported at it), deleted (entries missing at that position; entry_id null), inserted (an entry that was never sealed there), reordered (an entry that does not follow the one before it), cut (the tail from that position on is gone; entry_id null), unkeyed (a key is configured but the chain is not hashed with it). Unsealed entries are never reported. Raises 55000 audit_chain_key_missing when the chain is keyed and the key is not configured.';

-- ---------------------------------------------------------------------------
-- Adopting a key, reading the head
-- ---------------------------------------------------------------------------
create or replace function private.key_audit_chain()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  head private.audit_chain_head := private.lock_audit_chain();
  key text := private.audit_chain_key();
  entry public.audit_log;
  prev text := repeat('0', 64);
  n integer := 0;
begin
  if key is null then
    raise exception using errcode = '55000', message = 'audit_chain_key_missing',
      detail = 'set the Vault secret audit_chain_key (or ledgerbase.audit_chain_key) first';
  end if;
  if head.keyed then
    return 0;
  end if;
  if exists (select from private.verify_audit_chain_with(null)) then
    raise exception using errcode = '55000', message = 'audit_chain_broken',
      detail = 'private.verify_audit_chain() reports breaks: a broken chain is not re-hashed with the key';
  end if;
  perform pg_catalog.set_config('ledgerbase.audit_rekeying', 'on', true);
  for entry in select a.* from public.audit_log a where a.position is not null order by a.position loop
    entry.prev_hash := prev;
    prev := private.audit_entry_digest(entry, key);
    update public.audit_log a set prev_hash = entry.prev_hash, hash = prev where a.id = entry.id;
    n := n + 1;
  end loop;
  perform pg_catalog.set_config('ledgerbase.audit_rekeying', '', true);
  update private.audit_chain_head h set keyed = true, last_hash = prev where h.singleton;
  return n;
end
$$;
comment on function private.key_audit_chain() is
  'Run once after configuring the audit chain key: verifies the chain (raises 55000 audit_chain_broken if it has breaks) and re-hashes every sealed entry with the key; from then on the chain is keyed. Returns how many entries it re-hashed (0 when already keyed).';

create or replace function private.audit_head(out "position" bigint, out hash text, out entry_id bigint, out sealed_at timestamptz)
returns record
language sql
stable
set search_path = ''
as $$
  select h.last_position, h.last_hash, h.last_id, h.sealed_at from private.audit_chain_head h where h.singleton
$$;
comment on function private.audit_head() is
  'The end of the sealed audit chain (position, hash, the entry''s id, when sealed), to anchor elsewhere: a copy kept outside the database makes any rewrite of the chain up to it detectable, even by someone holding the key.';

create or replace function private.publish_audit_head()
returns void
language plpgsql
set search_path = ''
as $$
declare
  head record := private.audit_head();
begin
  raise log 'ledgerbase audit head: position % hash % entry % sealed_at %', head.position, head.hash, head.entry_id, head.sealed_at;
end
$$;
comment on function private.publish_audit_head() is
  'Writes the audit head to the server log (a line the database cannot change afterwards), for a daily pg_cron job; see README.';

-- ---------------------------------------------------------------------------
-- The existing entries, sealed in the order they were linked
-- ---------------------------------------------------------------------------
do $$
declare
  total bigint := (select count(*) from legacy_audit_chain);
  intact boolean;
  old_head private.audit_chain_head := (select h from private.audit_chain_head h where h.singleton);
  key text := private.audit_chain_key();
  entry public.audit_log;
  prev text := repeat('0', 64);
  pos bigint := 0;
  stamp timestamptz := pg_catalog.now();
begin
  -- Intact: every entry hashes right, one root, no fork, every entry reached from the root
  -- along the links, and the last one is the head's.
  intact := total = 0
    or ((select bool_and(valid) from legacy_audit_chain)
        and (select count(*) from legacy_audit_order) = total
        and (select count(distinct id) from legacy_audit_order) = total
        and (select count(*) from legacy_audit_chain where prev_hash = repeat('0', 64)) = 1
        and (select o.id = old_head.last_id and o.hash = old_head.last_hash
             from legacy_audit_order o order by o.n desc limit 1));
  for entry in
    select a.* from public.audit_log a left join legacy_audit_order o on o.id = a.id
    order by case when intact then o.n end, a.id
  loop
    pos := pos + 1;
    entry.prev_hash := prev;
    entry.sealed_at := stamp;
    prev := private.audit_entry_digest(entry, key);
    update public.audit_log a set position = pos, prev_hash = entry.prev_hash, hash = prev, sealed_at = stamp
    where a.id = entry.id;
  end loop;
  update private.audit_chain_head h
     set last_position = pos, last_id = (select a.id from public.audit_log a where a.position = pos),
         last_hash = prev, keyed = key is not null, sealed_at = case when pos > 0 then stamp end
   where h.singleton;
  perform private.audit('audit_log.migrated', 'audit_log', null, null, null,
    pg_catalog.jsonb_build_object('entries', total, 'legacy_chain_intact', intact, 'legacy_head_hash', old_head.last_hash));
  if not intact then
    raise warning 'the audit log''s previous hash chain did not verify: its % entries were sealed in id order; the audit_log.migrated entry records it', total;
  end if;
  perform private.seal_audit_log();
end
$$;

drop table legacy_audit_chain, legacy_audit_order;
drop function private.audit_entry_hash(public.audit_log);

alter table public.audit_log add constraint audit_log_sealed_whole check (
  (position is null and sealed_at is null and prev_hash is null and hash is null)
  or (position is not null and sealed_at is not null and prev_hash is not null and hash is not null));
