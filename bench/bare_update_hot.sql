-- Baseline of pair 1: the bare hot-row update, every client on the same row.
update bench.wallets set balance = balance - 1 where id = 1 and balance >= 1;
