-- model: staging.accepted_rows
-- materialized: statement
-- reads: raw.{table}, audit.quarantine
-- The rows of one batch ($batch_id) in raw.{table} that validation accepted: its quarantined rows
-- left out. The one quarantine filter of the load: warehouse/sources/schema.py types these rows
-- as core stores them (the field dictionary's staging expressions, in core's column order).
select r.* from raw.{table} r
where r._batch_id = $batch_id
  and not exists (
      select 1 from audit.quarantine q
      where q.batch_id = r._batch_id and q.table_name = '{table}'
        and q.source_file = r._source_file and q.row_number = r._row_number)
