-- Baseline of pair 1: the hand-written RPC (guarded decrement + log insert) on ONE profile.
select bench.generate('00000000-0000-4000-8000-000000000001'::uuid, 'api_call', 1);
