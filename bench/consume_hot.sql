-- Pair 1: consume_credits on ONE account (every client), on the trusted path: a direct
-- connection as postgres without a JWT, as the API-key usage function calls it.
select public.consume_credits('00000000-0000-4000-8000-000000000001'::uuid, 'api_call', 1);
