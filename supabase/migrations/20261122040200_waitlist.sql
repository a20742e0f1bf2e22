-- Waitlist: visitors leave their e-mail before launch (SPEC §4.7).
--
-- join_waitlist is callable by anon (the landing page) and answers {"status": "ok"} whether
-- the address is new or already listed, so it cannot be used to learn who signed up. It is
-- rate-limited per IP (policy join_waitlist) and validates and normalizes the address.
-- No client reads the table: the operator exports it with the service role or SQL.

-- ---------------------------------------------------------------------------
-- The table
-- ---------------------------------------------------------------------------
create table public.waitlist (
  id uuid primary key default gen_random_uuid(),
  email text not null unique check (email = lower(email) and char_length(email) <= 254),
  source text check (char_length(source) <= 100),
  referral_code text check (char_length(referral_code) <= 64),
  created_at timestamptz not null default now()
);
comment on table public.waitlist is
  'People waiting for access: one row per e-mail (stored lower-case, so unique case-insensitively). Filled only by join_waitlist(); no client reads it (service role and SQL only).';
comment on column public.waitlist.email is 'The address, trimmed and lower-cased.';
comment on column public.waitlist.source is 'Where the visitor came from (campaign, page), as the client sent it.';
comment on column public.waitlist.referral_code is 'A referral code the visitor arrived with (upper-cased), to apply when they sign up.';

alter table public.waitlist enable row level security;
create policy "Clients never read or write the waitlist" on public.waitlist
  as restrictive for all to anon, authenticated using (false) with check (false);
grant select, delete on public.waitlist to service_role;

-- ---------------------------------------------------------------------------
-- Validation
-- ---------------------------------------------------------------------------
create or replace function private.normalize_email(email text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  normalized text := lower(btrim(normalize_email.email));
begin
  -- A practical subset of RFC 5321: dot-atom local part (at most 64), a domain of
  -- LDH labels with a dot, at most 254 in all.
  if normalized is null
     or char_length(normalized) > 254
     or normalized !~ '^[a-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&''*+/=?^_`{|}~-]+)*@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
     or char_length(split_part(normalized, '@', 1)) > 64 then
    raise exception using errcode = '22023', message = 'invalid_email', detail = 'not an email address';
  end if;
  return normalized;
end
$$;
comment on function private.normalize_email(text) is
  'Trims and lower-cases an e-mail address and checks its shape (22023 invalid_email).';

-- ---------------------------------------------------------------------------
-- The API
-- ---------------------------------------------------------------------------
create or replace function public.join_waitlist(email text, source text default null, referral_code text default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  clean_email text;
  clean_source text := nullif(btrim(join_waitlist.source), '');
  clean_code text := upper(nullif(btrim(join_waitlist.referral_code), ''));
begin
  perform private.rate_limit('join_waitlist');
  clean_email := private.normalize_email(join_waitlist.email);
  if char_length(clean_source) > 100 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'source must be at most 100 characters';
  end if;
  if char_length(clean_code) > 64 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'referral_code must be at most 64 characters';
  end if;

  -- The same answer whether the address was there or not: the first sign-up is kept.
  insert into public.waitlist (email, source, referral_code, created_at)
  values (clean_email, clean_source, clean_code, private.now())
  on conflict on constraint waitlist_email_key do nothing;
  return pg_catalog.jsonb_build_object('status', 'ok');
end
$$;
comment on function public.join_waitlist(text, text, text) is
  'Puts an e-mail on the waitlist (idempotent: a known address keeps its first entry) and answers {"status": "ok"} either way. Callable by anon. Errors: 22023 invalid_email / invalid_input, PT429 rate_limited (policy join_waitlist, per IP).';

grant execute on function public.join_waitlist(text, text, text) to anon, authenticated;
