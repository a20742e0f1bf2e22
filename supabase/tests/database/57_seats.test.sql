-- Seats, the SQL rules (docs/billing.md#seats). The Stripe side (quantity updates, drift
-- correction) is proved by the Deno story seats_test.ts; here: the shape of
-- plans.seat_pricing, and the prepaid-seat member limit.
--
-- World: team "seats-team" (tests.team) with its owner and a viewer: two members, two seats
-- taken, when it subscribes to a prepaid plan of 2 seats.
begin;
select plan(3);

select tests.team('seats-team', owner => 'owner', viewers => '{viewer}', name => 'Seats team');

-- ---------------------------------------------------------------------------
-- plans.seat_pricing and prepaid seats
-- ---------------------------------------------------------------------------
select is(tests.caught($$ update public.plans set seat_pricing = '{"per_seat": true, "proration_behavior": "sometimes"}' where key = 'free' $$) ->> 'code',
  '23514', 'an unknown proration behaviour is refused');
select is(tests.caught($$ update public.plans set seat_pricing = '{"per_seat": true, "seats": 3}' where key = 'free' $$) ->> 'code',
  '23514', 'an unknown key is refused');

-- The team subscribes to a prepaid plan with 2 seats: both are taken, an invitation is refused.
insert into public.plans (key, name, tier, price_cents, stripe_price_id, seat_pricing)
values ('seats_prepaid', 'Prepaid seats', 3, 900, 'price_57prepaid', '{"per_seat": true, "prepaid": true}');
insert into public.subscriptions (account_id, stripe_subscription_id, plan_key, stripe_price_id, quantity, status,
                                  current_period_start, current_period_end, last_event_id, last_event_type, last_event_created)
values (tests.account_id('seats-team'), 'sub_57prepaid', 'seats_prepaid', 'price_57prepaid', 2, 'active',
        now() - interval '1 day', now() + interval '29 days', 'evt_57', 'customer.subscription.created', now());
select tests.authenticate_as('owner');
select is(tests.caught($$ select public.invite_member(tests.account_id('seats-team'), 'third@seats.test', 'member') $$)
          - 'detail',
  '{"code": "PT409", "message": "member_limit_reached", "hint": "add seats: raise the subscription''s quantity in the billing portal (POST /functions/v1/billing-portal), or remove a member or a pending invitation"}'::jsonb,
  'prepaid seats all taken: refused, with how to add seats');
select tests.clear_authentication();

select * from finish();
rollback;
