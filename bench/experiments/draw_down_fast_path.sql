-- Experiment (not a migration; apply with `npm run bench -- --apply=bench/experiments/draw_down_fast_path.sql`).
--
-- private.draw_down ranks every live lot of the wallet with a window function and updates
-- through a three-step CTE, even when (nearly always) the first lot in draw-down order
-- covers the whole charge. The fast path updates that lot alone, found by
-- credit_grants_drawdown_idx (account_id, expires_at, paid, created_at, id) with LIMIT 1,
-- and falls back to the original statement when it does not cover the amount.
-- Same result: taking `amount` from the first lot is what the CTE does when that lot
-- has at least `amount` remaining. The caller holds the wallet lock, as before.
create or replace function private.draw_down(account_id uuid, amount bigint)
returns void
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  taken bigint;
begin
  if amount <= 0 then
    return;
  end if;
  update public.credit_grants g set remaining = g.remaining - draw_down.amount
  where g.id = (select f.id from public.credit_grants f
                where f.account_id = draw_down.account_id and f.remaining > 0
                  and (f.expires_at is null or f.expires_at > at)
                order by f.expires_at, f.paid, f.created_at, f.id
                limit 1)
    and g.remaining >= draw_down.amount;
  if found then
    return;
  end if;
  with lots as (
    select g.id, g.remaining,
           sum(g.remaining) over (order by g.expires_at, g.paid, g.created_at, g.id) as upto
    from public.credit_grants g
    where g.account_id = draw_down.account_id
      and g.remaining > 0
      and (g.expires_at is null or g.expires_at > at)
  ), take as (
    select l.id, least(l.remaining, amount - (l.upto - l.remaining)) as n
    from lots l
    where l.upto - l.remaining < amount
  ), drawn as (
    update public.credit_grants g set remaining = g.remaining - take.n
    from take where g.id = take.id
    returning take.n
  )
  select coalesce(sum(n), 0) into taken from drawn;
  if taken <> amount then
    raise exception using errcode = 'XX000', message = 'credit invariant violated',
      detail = pg_catalog.format('account %s: drew %s of %s credits', account_id, taken, amount);
  end if;
end
$$;
