-- model: core.stale_versions
-- materialized: statement
-- reads: raw.{table}, core.{table}, audit.quarantine
-- A record version older than the current one in core (a source sending again what it sent
-- before, with an earlier 更新时间) is not applied: it goes to quarantine with rule $rule, so it
-- stays in raw as received, counts as quarantined, and the newer version stays current.
-- Templated by warehouse/load.py with the table, its business key expression over raw (r) and
-- the key match between core (c) and raw (r); returns the number of rows quarantined.
insert into audit.quarantine
select r._batch_id, $source, '{table}', r._source_file, r._row_number, r.township_code, {raw_key},
       [$rule], $message_zh, $message_en, to_json(r), $now, null, null
from raw.{table} r
join core.{table} c on {key_match} and c.valid_to is null
where r._batch_id = $batch_id
  and try_cast(r.source_modified_at as timestamp) < c.source_modified_at
  and not exists (
      select 1 from audit.quarantine q
      where q.batch_id = r._batch_id and q.table_name = '{table}'
        and q.source_file = r._source_file and q.row_number = r._row_number)
