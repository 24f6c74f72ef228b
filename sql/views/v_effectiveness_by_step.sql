-- Reminders by step and how many of the reminded documents are no longer open in the
-- latest stored snapshot (paid since the reminder). The report's effectiveness section
-- is finer (paid within 7 days, against documents that got no reminder).
SELECT r.step_id,
       COUNT(*)                                                AS reminded,
       SUM(CASE WHEN s.document_ref IS NULL THEN 1 ELSE 0 END) AS paid_since,
       MIN(r.sent_at)                                          AS first_sent,
       MAX(r.sent_at)                                          AS last_sent
FROM collection_register r
LEFT JOIN aging_snapshot s
       ON s.document_ref = r.document_ref
      AND s.as_of_date = (SELECT MAX(as_of_date) FROM aging_snapshot)
WHERE r.action = 'email' AND r.sent_at IS NOT NULL
GROUP BY r.step_id
