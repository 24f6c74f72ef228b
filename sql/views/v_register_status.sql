-- Current state of the collection register by step, action and status.
SELECT step_id,
       action,
       status,
       COUNT(*)                                             AS register_rows,
       SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END) AS done,
       MAX(updated_at)                                      AS last_update
FROM collection_register
GROUP BY step_id, action, status
