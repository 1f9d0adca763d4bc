-- A spreadsheet delivery made again (the same file name, or with `supersede = "township_year"`
-- any file of the same township and year) is a new version of it: rows an earlier version had
-- and this one lacks are closed in core (valid_to = load time). Templated by
-- warehouse/supersede.py with the table, its business key expression and the delivery expression.
-- Keys present in the new version (loaded or quarantined) stay as the merge left them.
update core.{table} as t set valid_to = $loaded_at
where t.valid_to is null
  and {core_key} in (
      with new_version as (
          select {delivery} as delivery, {raw_key} as k
          from raw.{table} r
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
        and not exists (select 1 from new_version n where n.delivery = e.delivery and n.k = e.k)
  );
