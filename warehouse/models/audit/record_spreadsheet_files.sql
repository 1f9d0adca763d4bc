-- model: audit.record_spreadsheet_files
-- materialized: statement
-- reads: temp.parsed_files, temp.batch_files
-- The files of a loaded spreadsheet batch ($batch_id) and what became of each: `parsed_files`
-- (the parse's record: file_name, township_code, report_year, status parsed | refused, rows),
-- `batch_files` (name, bytes, sha256 as landed).
insert into audit.spreadsheet_file
select $batch_id, $source, p.file_name, f.sha256, p.township_code, cast(p.report_year as integer),
       case when p.status = 'parsed' then 'loaded' else 'refused' end, cast(p.rows as bigint), $at
from parsed_files p
left join batch_files f on f.name = p.file_name
