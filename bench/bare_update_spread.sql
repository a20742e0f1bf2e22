-- Baseline of pairs 2 and 3: the bare update on a random row of :accounts.
\set id random(1, :accounts)
update bench.wallets set balance = balance - 1 where id = :id and balance >= 1;
