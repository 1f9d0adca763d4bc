-- Accepted training sessions of one batch ($batch_id), typed.
with source as (
    select r.* from raw.training_session r
    where r._batch_id = $batch_id
      and not exists (
          select 1 from audit.quarantine q
          where q.batch_id = r._batch_id and q.table_name = 'training_session'
            and q.source_file = r._source_file and q.row_number = r._row_number)
)
select
    township_code, session_id, cast(session_date as date) as session_date, session_type,
    topic, organiser, cast(hours as decimal(6, 2)) as hours
from source
