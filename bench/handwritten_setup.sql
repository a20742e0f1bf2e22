-- The hand-written baseline of docs/performance.md#targets (seed 002's pattern), on its own 10,000 rows:
-- a profiles table with a credits column, a generations log with a foreign key to
-- profiles and an index on it, and one plpgsql function that does a guarded decrement
-- and inserts the log row. No idempotency, lots, expiry, quotas or rate limits. Plain
-- defaults (no fillfactor), as such a project writes it. psql variable: accounts.
\set ON_ERROR_STOP 1

create table bench.profiles (
  id uuid primary key,
  credits integer not null default 0,
  referral_code text unique,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create table bench.generations (
  id uuid primary key default gen_random_uuid(),
  profile_id uuid not null references bench.profiles (id) on delete cascade,
  generation_type text not null,
  output_image_url text,
  credit_cost integer not null default 0,
  created_at timestamptz default now()
);
create index generations_profile_id_idx on bench.generations (profile_id);

-- The same ids as the accounts of setup.sql, so both sides build them the same way.
insert into bench.profiles (id, credits)
select ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 2000000000
from generate_series(1, :accounts) g;

create function bench.generate(profile_id uuid, generation_type text, cost integer) returns void
language plpgsql security definer set search_path = '' as $$
begin
  update bench.profiles p set credits = p.credits - cost
  where p.id = generate.profile_id and p.credits >= cost;
  if not found then
    raise exception 'insufficient credits';
  end if;
  insert into bench.generations (profile_id, generation_type, credit_cost)
  values (generate.profile_id, generate.generation_type, cost);
end
$$;

vacuum analyze bench.profiles, bench.generations;
