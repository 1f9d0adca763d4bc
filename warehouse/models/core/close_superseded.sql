-- A spreadsheet file delivered again under the same name is a new version of that file: rows
-- an earlier version of the file had and this one lacks are closed in core (valid_to = load
-- time). Templated by warehouse/supersede.py with the table and its business key expression.
-- Keys present in the new version (loaded or quarantined) stay as the merge left them.
update core.{table} as t set valid_to = $loaded_at
where t.valid_to is null
  and {core_key} in (
      with new_version as (
          select split_part(r._source_file, '#', 1) as file_name, {raw_key} as k
          from raw.{table} r
          where r._batch_id = $batch_id
      ),
      earlier_versions as (
          select split_part(r._source_file, '#', 1) as file_name, {raw_key} as k
          from raw.{table} r
          join audit.batch b on b.batch_id = r._batch_id and b.status = 'loaded'
          where r._batch_id <> $batch_id
            and split_part(r._source_file, '#', 1) in (select file_name from new_version)
      )
      select e.k from earlier_versions e
      where e.k is not null
        and not exists (select 1 from new_version n where n.file_name = e.file_name and n.k = e.k)
  );
