-- model: core.close_superseded
-- materialized: statement
-- reads: core.{table}, raw.{table}, audit.quarantine, audit.batch
-- A spreadsheet delivery made again (the same file name, or with `supersede = "township_year"`
-- any file of the same township and year) is a new version of it that replaces the earlier one
-- whole: rows an earlier version had and this one lacks, or has only in quarantine (a value that
-- fails validation in the corrected file), are closed in core (valid_to = load time), so the old
-- value never silently stands. Templated by warehouse/supersede.py with the table, its business
-- key expression and the delivery expression.
update core.{table} as t set valid_to = $loaded_at
where t.valid_to is null
  and {core_key} in (
      with new_version as (
          select {delivery} as delivery, {raw_key} as k
          from raw.{table} r
          where r._batch_id = $batch_id
      ),
      new_accepted as (
          select {delivery} as delivery, {raw_key} as k
          from raw.{table} r
          anti join (
              select source_file, row_number from audit.quarantine
              where batch_id = $batch_id and table_name = '{table}'
          ) q on q.source_file = r._source_file and q.row_number = r._row_number
          where r._batch_id = $batch_id
      ),
      earlier_versions as (
          select {delivery} as delivery, {raw_key} as k
          from raw.{table} r
          join audit.batch b on b.batch_id = r._batch_id and b.status = 'loaded'
          where r._batch_id <> $batch_id
            and {delivery} in (select delivery from new_version)
      )
      select e.k from earlier_versions e
      where e.k is not null
        and not exists (select 1 from new_accepted n where n.delivery = e.delivery and n.k = e.k)
  );
