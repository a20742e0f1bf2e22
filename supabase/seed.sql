-- Demo catalog and demo users for local development (`npm start`, `npm run db:reset`).
-- Idempotent: the Supabase CLI re-runs it when it changes.

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

-- ---------------------------------------------------------------------------
-- Demo users (password sign-in is GoTrue's business; use `npm run token -- <email>`)
-- ---------------------------------------------------------------------------
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('00000000-0000-0000-0000-000000000000', 'd0000000-0000-4000-8000-00000000a1ce', 'authenticated', 'authenticated',
   'alice@demo.ledgerbase.dev', '', now(), '{"provider": "email", "providers": ["email"]}',
   '{"full_name": "Alice Demo", "username": "alice"}', now(), now()),
  ('00000000-0000-0000-0000-000000000000', 'd0000000-0000-4000-8000-000000000b0b', 'authenticated', 'authenticated',
   'bob@demo.ledgerbase.dev', '', now(), '{"provider": "email", "providers": ["email"]}',
   '{"full_name": "Bob Demo", "username": "bob"}', now(), now())
on conflict (id) do nothing;

-- Alice operates the SaaS.
update public.user_roles set role = 'admin' where user_id = 'd0000000-0000-4000-8000-00000000a1ce';
