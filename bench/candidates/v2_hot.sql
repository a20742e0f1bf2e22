-- The v2 common path (bench/candidates/v2_common_path.sql) on ONE account.
select bench.v2_consume('00000000-0000-4000-8000-000000000001'::uuid, 'api_call', 1);
