-- severity: fail
-- Nothing lost: for every loaded batch and table, received = loaded + quarantined, and the raw
-- and quarantine tables hold exactly those rows. (A stopped batch's tables are in audit.batch_table
-- with what they received; nothing of them is loaded or quarantined.)
with raw_counts as (
    {{ raw_row_counts }}  -- every source table (warehouse/sources/registry.py)
),
quarantine_counts as (
    select batch_id, table_name, count(*) as n from audit.quarantine group by 1, 2
)
select 'reconciliation' as audit,
       'batch ' || b.batch_id || ' ' || b.table_name || ': received ' || b.received_rows
       || ', loaded ' || b.loaded_rows || ', quarantined ' || b.quarantined_rows
       || ', raw ' || coalesce(r.n, 0) || ', quarantine ' || coalesce(q.n, 0) as detail
from audit.batch_table b
join audit.batch s on s.batch_id = b.batch_id and s.status = 'loaded'
left join raw_counts r on r.batch_id = b.batch_id and r.table_name = b.table_name
left join quarantine_counts q on q.batch_id = b.batch_id and q.table_name = b.table_name
where b.received_rows <> b.loaded_rows + b.quarantined_rows
   or b.received_rows <> coalesce(r.n, 0)
   or b.quarantined_rows <> coalesce(q.n, 0)
