-- Outstanding by aging bucket for every as-of date.
SELECT as_of_date,
       bucket,
       COUNT(*)         AS documents,
       SUM(outstanding) AS outstanding
FROM aging_snapshot
GROUP BY as_of_date, bucket
