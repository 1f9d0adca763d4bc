-- model: core.resolve_superseded
-- materialized: statement
-- reads: audit.quarantine, raw.{table}
-- Quarantine entries of an earlier version of a delivery this batch ($batch_id) replaced whole
-- (close_superseded.sql): the corrected file is what counts now; whatever still fails in it is
-- quarantined again under this batch. Templated by warehouse/supersede.py: the delivery
-- expression over raw rows `r` and over quarantine entries `q`.
update audit.quarantine as q set resolved_at = $loaded_at, resolved_by_batch = $batch_id
where q.resolved_at is null and q.table_name = '{table}' and q.batch_id <> $batch_id
  and {quarantine_delivery} in (
      select {delivery} from raw.{table} r where r._batch_id = $batch_id
  );
