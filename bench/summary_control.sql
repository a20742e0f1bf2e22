-- Drift control for the summary pair: a constant-cost lookup, timed next to the summary in
-- both sizes, so a machine that got busier between the sizes shows as a control ratio.
select count(*) from public.billable_actions where key = 'api_call';
