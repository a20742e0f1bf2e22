-- The catalog: plans, credit packs and billable actions. Seeded everywhere: the local stack,
-- the tests, and a hosted project with `supabase db push --include-seed` (the only seed file
-- supabase/config.toml names). It creates no user and no staff admin; demo users are in
-- supabase/seed/demo.sql, which only the local stack applies.
-- Idempotent: the Supabase CLI re-runs it when it changes; edit the prices and credits to
-- your own before the first deploy (or change them later as a staff admin).

-- ---------------------------------------------------------------------------
-- Plans
-- ---------------------------------------------------------------------------
insert into public.plans (key, name, tier, price_cents, currency, billing_interval, included_credits, trial_days, max_members, features, limits)
values
  ('free', 'Free', 0, 0, 'usd', 'month', 0, 0, 1,
   '["50 signup credits", "Personal workspace"]',
   '{"quotas": {"api_call": 1000}}'),
  ('starter', 'Starter', 1, 999, 'usd', 'month', 250, 7, 3,
   '["250 credits every month", "3 team members", "Email support"]',
   '{"quotas": {"api_call": 10000}}'),
  ('pro', 'Pro', 2, 2900, 'usd', 'month', 1000, 14, 10,
   '["1,000 credits every month", "10 team members", "Priority generation"]',
   '{"quotas": {"api_call": 100000}, "rate_limits": {"consume_credits": {"capacity": 600, "refill_per_second": 50}}}'),
  ('enterprise', 'Enterprise', 3, 9900, 'usd', 'month', 5000, 14, null,
   '["5,000 credits every month", "Unlimited members", "SLA"]',
   '{"rate_limits": {"consume_credits": {"capacity": 2000, "refill_per_second": 200}}}')
on conflict (key) do update set
  name = excluded.name, tier = excluded.tier, price_cents = excluded.price_cents, currency = excluded.currency,
  billing_interval = excluded.billing_interval, included_credits = excluded.included_credits,
  trial_days = excluded.trial_days, max_members = excluded.max_members, features = excluded.features,
  limits = excluded.limits;

-- ---------------------------------------------------------------------------
-- Credit packs
-- ---------------------------------------------------------------------------
insert into public.credit_packs (key, name, credits, price_cents, currency)
values
  ('pack_250', '250 credits', 250, 1000, 'usd'),
  ('pack_500', '500 credits', 500, 2000, 'usd')
on conflict (key) do update set
  name = excluded.name, credits = excluded.credits, price_cents = excluded.price_cents, currency = excluded.currency;

-- ---------------------------------------------------------------------------
-- Billable actions
-- ---------------------------------------------------------------------------
insert into public.billable_actions (key, name, category, credits, unit_size, description)
values
  ('text_to_thumbnail', 'Text to Thumbnail', 'generation', 10, 1, 'A thumbnail generated from a text prompt.'),
  ('youtube_thumbnail', 'YouTube Thumbnail', 'generation', 20, 1, 'A thumbnail in YouTube format.'),
  ('your_face', 'Your Face', 'generation', 20, 1, 'A thumbnail featuring an uploaded face photo.'),
  ('face_youtube', 'Face + YouTube', 'generation', 20, 1, 'A YouTube thumbnail featuring an uploaded face photo.'),
  ('top_youtube_style', 'Top YouTube Style', 'generation', 20, 1, 'A thumbnail in the style of top YouTube channels.'),
  ('top_youtube_style_face', 'Top YouTube Style + Face', 'generation', 20, 1, 'Top YouTube style featuring an uploaded face photo.'),
  ('api_call', 'API call', 'api', 1, 1, 'One call to the metered API.'),
  ('ai_tokens', 'AI tokens', 'ai', 1, 1000, 'Model tokens, priced per 1,000.')
on conflict (key) do update set
  name = excluded.name, category = excluded.category, credits = excluded.credits,
  unit_size = excluded.unit_size, description = excluded.description;
