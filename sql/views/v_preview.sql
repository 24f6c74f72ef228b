-- What the latest run for each date decided to do, and why not for the rest
-- (seed 000 item 8: "which orders get a reminder next time"). `excluded` rows are left
-- out of collection_plan; reasons are the codes of receivables.domain.plan.REASONS.
SELECT p.as_of_date,
       p.document_number,
       p.partner_name,
       p.step_id,
       p.action,
       p.decision,
       p.reason,
       p.target,
       p.due_day,
       p.outstanding,
       p.run_id
FROM collection_plan p
WHERE p.decision IN ('act', 'skip', 'hold', 'superseded', 'not_due')
