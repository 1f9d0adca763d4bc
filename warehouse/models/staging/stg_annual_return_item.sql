-- Accepted annual-return items of one batch ($batch_id), typed.
with source as (
    select r.* from raw.annual_return_item r
    where r._batch_id = $batch_id
      and not exists (
          select 1 from audit.quarantine q
          where q.batch_id = r._batch_id and q.table_name = 'annual_return_item'
            and q.source_file = r._source_file and q.row_number = r._row_number)
)
select
    township_code, report_year, item_code, item_name,
    cast(value_number as decimal(18, 2)) as value_number, qualifier,
    try_cast(filled_date as date) as filled_date
from source
