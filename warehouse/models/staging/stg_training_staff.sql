-- Accepted staff-roster rows of one batch ($batch_id), typed.
with source as (
    select r.* from raw.training_staff r
    where r._batch_id = $batch_id
      and not exists (
          select 1 from audit.quarantine q
          where q.batch_id = r._batch_id and q.table_name = 'training_staff'
            and q.source_file = r._source_file and q.row_number = r._row_number)
)
select
    township_code, roster_year, person_key, staff_number_key, unit, post,
    is_officer = '是' as is_officer, certificate_key,
    cast(certificate_valid_until as date) as certificate_valid_until
from source
