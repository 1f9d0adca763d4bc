-- Accepted attendance rows of one batch ($batch_id), typed.
with source as (
    select r.* from raw.training_attendance r
    where r._batch_id = $batch_id
      and not exists (
          select 1 from audit.quarantine q
          where q.batch_id = r._batch_id and q.table_name = 'training_attendance'
            and q.source_file = r._source_file and q.row_number = r._row_number)
)
select
    township_code, session_id, person_key, staff_number_key, unit,
    is_leading_cadre = '是' as is_leading_cadre, is_officer = '是' as is_officer,
    cast(test_score as decimal(6, 2)) as test_score, is_passed = '是' as is_passed
from source
