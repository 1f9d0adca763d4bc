-- model: audit.resolve_file_issues
-- materialized: statement
-- reads: audit.file_issue, audit.spreadsheet_file
-- Issues still open about an earlier delivery of a file this batch ($batch_id) loaded: the same
-- name whatever its extension (a workbook saved again as .xlsx), the same content (a file renamed
-- correctly), or, with supersede = township_year, the same township and year.
update audit.file_issue as i set resolved_at = $at, resolved_by_batch = $batch_id
where i.resolved_at is null and i.source = $source and i.batch_id <> $batch_id
  and exists (
      select 1 from audit.spreadsheet_file s
      where s.batch_id = $batch_id and s.status = 'loaded'
        and (regexp_replace(s.file_name, '\.[^.]*$', '') = regexp_replace(i.file_name, '\.[^.]*$', '')
             or s.sha256 = i.sha256
             or ($by_township_year and s.township_code = i.township_code and s.report_year = i.report_year))
  )
