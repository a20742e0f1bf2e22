-- The v2 common path as one statement (bench/candidates/v2_one_statement.sql) on ONE account.
select bench.v2s_consume('00000000-0000-4000-8000-000000000001'::uuid, 'api_call', 1);
