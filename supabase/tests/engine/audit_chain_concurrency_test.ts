/**
 * Story: money and membership events are audited from many servers at once while the
 * sealer links them into the chain. docs/audit.md#the-chain: the chain holds under any concurrency
 * (entries are linked in an order no later commit can precede, so concurrent writers never
 * produce a false break), and the sealer may run at any time, twice at once included.
 *
 * 32 dedicated connections (postgres, the trusted server path) run transactions that each
 * write 1–5 audit entries drawn at random from: a member added to or removed from a team
 * (account_members triggers), a staff adjustment (public.admin_adjust_credits) and a Stripe
 * webhook (private.handle_stripe_event with a paid subscription invoice), with short pauses
 * inside the transaction so that their lifetimes overlap. Two sealers run throughout. At the
 * end everything is sealed and private.verify_audit_chain() must report no break at all.
 */
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import {
  closeAll,
  connect,
  createUsers,
  openClients,
  rng,
  type Sql,
  testSeed,
  type Tx,
} from "../../functions/tests/_support/wallet.ts";
import { createCatalog } from "../../functions/tests/_support/stripe/billing_db.ts";
import { invoice, stripeEvent, uid } from "../../functions/tests/_support/stripe/events.ts";

const CONNECTIONS = 32;
const SECONDS = 10;

interface Fixture {
  /** One team per connection, with a spare user who joins and leaves it. */
  teams: Array<{ id: string; spare: string; joined: boolean }>;
  /** Per connection, the personal accounts it adjusts and bills (its own: no wallet is shared, so
   *  the only thing the connections contend for is the audit log). */
  accounts: string[][];
  priceId: string;
}

async function prepare(admin: Sql): Promise<Fixture> {
  const users = await createUsers(admin, 2 * CONNECTIONS);
  const catalog = await createCatalog(admin);
  const teams: Fixture["teams"] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const [owner, spare] = [users[2 * i], users[2 * i + 1]];
    const [team] = await admin<{ id: string }[]>`
      insert into public.accounts (kind, name, slug, primary_owner, created_by)
      values ('team', ${"Audit chain " + i}, ${"audit-chain-" + uid().toLowerCase()}, ${owner}, ${owner})
      returning id`;
    await admin`insert into public.account_members (account_id, user_id, role) values (${team.id}, ${owner}, 'owner')`;
    teams.push({ id: team.id, spare, joined: false });
  }
  const accounts = teams.map((_, i) => [users[2 * i], users[2 * i + 1]]);
  return { teams, accounts, priceId: catalog.basic.priceId };
}

/** One audited operation inside `tx` (one or more audit entries). */
async function auditedOperation(tx: Tx, fixture: Fixture, slot: number, random: () => number): Promise<void> {
  const kind = Math.floor(random() * 3);
  if (kind === 0) {
    const team = fixture.teams[slot];
    if (team.joined) {
      await tx`delete from public.account_members where account_id = ${team.id} and user_id = ${team.spare}`;
    } else {
      await tx`insert into public.account_members (account_id, user_id, role) values (${team.id}, ${team.spare}, 'member')`;
    }
    team.joined = !team.joined;
  } else if (kind === 1) {
    const account = fixture.accounts[slot][Math.floor(random() * 2)];
    await tx`select public.admin_adjust_credits(${account}::uuid, 1, 'audit chain under load', ${"chain-" + uid()})`;
  } else {
    const account = fixture.accounts[slot][Math.floor(random() * 2)];
    const id = uid();
    const event = stripeEvent(
      "invoice.paid",
      invoice({
        id: `in_${id}`,
        customer: `cus_${id}`,
        subscription: `sub_${id}`,
        accountId: account,
        priceId: fixture.priceId,
        amountPaid: 1000,
      }),
    );
    const [row] = await tx<{ outcome: string }[]>`select private.handle_stripe_event(${
      JSON.stringify(event)
    }::text::jsonb) as outcome`;
    assertEquals(row.outcome, "processed");
  }
}

async function unsealed(admin: Sql): Promise<number> {
  const [row] = await admin<{ n: number }[]>`select count(*)::int as n from public.audit_log where sealed_at is null`;
  return row.n;
}

Deno.test("32 connections audit money and membership events for 10 s while two sealers run: no break", async () => {
  const admin = connect(2);
  const clients = await openClients(CONNECTIONS);
  const sealers = [connect(1), connect(1)];
  try {
    const fixture = await prepare(admin);
    const [{ before }] = await admin<{ before: number }[]>`select count(*)::int as before from public.audit_log`;
    const seed = testSeed("audit chain concurrency");
    const deadline = Date.now() + SECONDS * 1000;
    let writing = true;
    let transactions = 0;

    // Two sealers at once, all along: only one links at a time, neither ever forks the chain.
    const sealing = sealers.map(async (sealer) => {
      let sealed = 0;
      while (writing) {
        const [row] = await sealer<{ n: number }[]>`select private.seal_audit_log() as n`;
        sealed += row.n;
        await new Promise((r) => setTimeout(r, 50));
      }
      return sealed;
    });

    await Promise.all(clients.map(async (client, slot) => {
      const random = rng(seed + slot);
      while (Date.now() < deadline) {
        const operations = 1 + Math.floor(random() * 5);
        await client.begin(async (tx) => {
          for (let i = 0; i < operations; i++) {
            await auditedOperation(tx, fixture, slot, random);
            // Keep the transaction open a little so that writers overlap and commit out of order.
            await tx`select pg_sleep(${random() * 0.01})`;
          }
        });
        transactions++;
      }
    }));
    writing = false;
    const sealedWhileWriting = (await Promise.all(sealing)).reduce((a, b) => a + b, 0);

    // Whatever is left is sealed by the next run: every writer has finished.
    await admin`select private.seal_audit_log()`;
    assertEquals(await unsealed(admin), 0, "one sealer run after the writers finish seals everything");

    const [{ after }] = await admin<{ after: number }[]>`select count(*)::int as after from public.audit_log`;
    assert(transactions >= CONNECTIONS, `every connection committed at least once (${transactions} transactions)`);
    assert(after - before >= transactions, `each transaction wrote at least one entry (${after - before} entries)`);
    assert(sealedWhileWriting > 0, "the sealers linked entries while the writers were still running");

    const breaks = await admin`select to_jsonb(b) as b from private.verify_audit_chain() b`;
    assertEquals(breaks.map((r) => r.b), [], "no false break: every sealed entry links to the one before it");

    // The positions are 1..n without a gap, and the head is the last of them.
    const [chain] = await admin<{ n: number; min: number; max: number; head: number; same_hash: boolean }[]>`
      select count(*)::int as n, min(position)::int as min, max(position)::int as max,
             (select position::int from private.audit_head()) as head,
             (select hash from private.audit_head()) = (select hash from public.audit_log order by position desc limit 1) as same_hash
      from public.audit_log`;
    assertEquals([chain.min, chain.max, chain.head], [1, chain.n, chain.n]);
    assert(chain.same_hash, "the head holds the hash of the last sealed entry");
  } finally {
    await closeAll([...clients, ...sealers]);
    await admin.end({ timeout: 5 });
  }
});
