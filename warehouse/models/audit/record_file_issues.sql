-- model: audit.record_file_issues
-- materialized: statement
-- reads: temp.issues, temp.batch_files, audit.file_issue
-- The issues found in a spreadsheet batch's files (`issues`, warehouse/sources/township_files.py),
-- with each file's sha256 from `batch_files`. An issue still open from an earlier attempt at the
-- same content (a stopped batch is tried again next run) is not recorded twice.
insert into audit.file_issue
select $batch_id, $source, i.file_name, f.sha256, i.township_code, cast(i.report_year as integer),
       i.sheet_name, cast(i.row_number as integer), i.column_name, i.value_text, i.rule, i.level,
       i.message_zh, i.message_en, $at, null, null
from issues i
left join batch_files f on f.name = i.file_name
where not exists (
    select 1 from audit.file_issue o
    where o.resolved_at is null and o.source = $source and o.sha256 is not distinct from f.sha256
      and o.file_name = i.file_name and o.rule = i.rule and o.level = i.level
      and o.sheet_name is not distinct from i.sheet_name
      and o.row_number is not distinct from cast(i.row_number as integer)
      and o.column_name is not distinct from i.column_name
)
