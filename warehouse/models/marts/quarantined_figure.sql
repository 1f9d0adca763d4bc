-- model: temp.quarantined_figure
-- materialized: temp
-- reads: audit.quarantine
-- grain: year, township_code, indicator_code
-- Township figures whose input records are in quarantine (entries open as of $as_of): a return
-- item (LIT02 when its LIT02A or LIT02B is), and every training figure the quarantined table feeds
-- for the year of the ledger the record came from. indicator_value.sql gives them status
-- quarantined: a return item is then not computed (and no other figure is derived from it), a
-- training figure counts the accepted records only.
with open_entries as (
    select table_name, township_code, business_key, source_file
    from audit.quarantine
    where source in ('training', 'returns') and township_code is not null
      and quarantined_at <= $as_of and (resolved_at is null or resolved_at > $as_of)
),
training_figures as (
    select * from (values
        ('training_session', ['TRN01', 'TRN02', 'TRN03', 'TRN04', 'TRN05', 'TRN06', 'TRN07', 'TRN08', 'TRN09']),
        ('training_attendance', ['TRN02', 'TRN07', 'TRN08', 'TRN09']),
        ('training_staff', ['TRN07', 'TRN08'])
    ) v(table_name, indicator_codes)
),
figures as (
    select try_cast(split_part(business_key, '|', 2) as integer) as year, township_code,
           case when split_part(business_key, '|', 3) in ('LIT02A', 'LIT02B') then 'LIT02'
                else split_part(business_key, '|', 3) end as indicator_code
    from open_entries
    where table_name = 'annual_return_item'
    union all
    -- the year the file's name gives, full-width digits too (warehouse/sources/township_files.py)
    select try_cast(nullif(regexp_extract(translate(q.source_file, '０１２３４５６７８９＿', '0123456789_'),
                                          '^[0-9]{9}_([0-9]{4})_', 1), '') as integer),
           q.township_code, unnest(f.indicator_codes)
    from open_entries q
    join training_figures f using (table_name)
)
select distinct cast(year as integer) as year, township_code, indicator_code
from figures
where year is not null and indicator_code <> ''
