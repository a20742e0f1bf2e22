-- Pair 2b (for information): the bare update of pair 2, run inside a SECURITY DEFINER
-- plpgsql function as every RPC is: what calling a function costs on its own.
\set id random(1, :accounts)
select bench.update_in_function(:id);
