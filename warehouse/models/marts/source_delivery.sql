-- model: temp.source_delivery
-- materialized: temp
-- reads: audit.spreadsheet_file, core.annual_return_item, core.training_staff, core.training_session
-- grain: source, township_code, year
-- Training ledgers and annual returns delivered, per source, township and year (the year of the
-- file's name): a file of theirs loaded (audit.spreadsheet_file, as of $as_of). A township-year
-- without one (never sent, or every file refused) has status missing_source for that source's
-- figures (indicator_value.sql). So has one whose file was re-sent under its name and the new
-- version refused as a whole: the earlier figures do not silently stand for a correction that was
-- refused. `source_files`: the loaded files whose rows are current in core, the files the
-- township-year's figures come from.
with loaded as (
    select source, township_code, report_year as year, file_name, batch_id, loaded_at
    from audit.spreadsheet_file
    where status = 'loaded' and loaded_at <= $as_of and township_code is not null and report_year is not null
),
delivered as (
    select l.source, l.township_code, l.year, l.file_name, l.batch_id
    from loaded l
    where not exists (
        select 1
        from audit.spreadsheet_file r
        where r.status = 'refused' and r.source = l.source and r.file_name = l.file_name
          and r.loaded_at > l.loaded_at and r.loaded_at <= $as_of
    )
),
current_batches as (
    select 'returns' as source, township_code, report_year as year, batch_id
    from core.annual_return_item
    where valid_from <= $as_of and (valid_to is null or valid_to > $as_of)
    group by all
    union
    select 'training', township_code, roster_year, batch_id
    from core.training_staff
    where valid_from <= $as_of and (valid_to is null or valid_to > $as_of)
    group by all
    union
    select 'training', township_code, null, batch_id  -- a session's year need not be its ledger's
    from core.training_session
    where valid_from <= $as_of and (valid_to is null or valid_to > $as_of)
    group by all
),
files as (
    select distinct d.source, d.township_code, d.year, d.file_name, c.batch_id is not null as is_current
    from delivered d
    left join current_batches c
      on c.source = d.source and c.township_code = d.township_code and c.batch_id = d.batch_id
     and (c.year is null or c.year = d.year)
)
select source, township_code, cast(year as integer) as year,
       nullif(list(file_name order by file_name) filter (where is_current), []) as source_files
from files
group by source, township_code, year
