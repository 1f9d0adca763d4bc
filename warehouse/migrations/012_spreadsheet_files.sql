-- Township spreadsheet files (issue 15). Each file of a spreadsheet batch is read on its own:
-- audit.spreadsheet_file records what became of it (loaded, or refused as a whole), and
-- audit.file_issue every refusal and warning found in it, located by sheet, Excel row and column.
-- The indicator marts read spreadsheet_file to tell a township-year whose ledger or return never
-- arrived (or was refused) from one that reported nothing, and to name the file behind a figure.
create table audit.spreadsheet_file (
    batch_id varchar not null,
    source varchar not null,
    file_name varchar not null,
    sha256 varchar,
    township_code varchar,             -- from the file name (null when the name has none)
    report_year integer,               -- from the file name
    status varchar not null,           -- loaded | refused
    rows_read bigint not null,         -- records read from the file (all its tables)
    loaded_at timestamp not null,
    primary key (batch_id, file_name)
);

create table audit.file_issue (
    batch_id varchar not null,
    source varchar not null,
    file_name varchar not null,
    sha256 varchar,
    township_code varchar,
    report_year integer,
    sheet_name varchar,
    row_number integer,                -- Excel's row number
    column_name varchar,               -- Excel's column letter
    value_text varchar,                -- the cell as written (never from a personal column)
    rule varchar not null,
    level varchar not null,            -- refused (the file is not loaded) | warn (loaded; part not read)
    message_zh varchar not null,
    message_en varchar not null,
    recorded_at timestamp not null,
    resolved_at timestamp,             -- a later file of the same name, content or township-year loaded
    resolved_by_batch varchar
);

-- Files of spreadsheet batches loaded before this migration, from the raw layer.
insert into audit.spreadsheet_file
select f.batch_id, f.source, f.file_name, null, f.township_code,
       try_cast(nullif(regexp_extract(f.file_name, '^[0-9]{9}_([0-9]{4})_', 1), '') as integer),
       'loaded', sum(f.n), b.loaded_at
from (
    select _batch_id as batch_id, 'training' as source, split_part(_source_file, '#', 1) as file_name,
           township_code, count(*) as n
    from raw.training_session group by all
    union all
    select _batch_id, 'training', split_part(_source_file, '#', 1), township_code, count(*)
    from raw.training_attendance group by all
    union all
    select _batch_id, 'training', split_part(_source_file, '#', 1), township_code, count(*)
    from raw.training_staff group by all
    union all
    select _batch_id, 'returns', split_part(_source_file, '#', 1), township_code, count(*)
    from raw.annual_return_item group by all
) f
join audit.batch b on b.batch_id = f.batch_id and b.status = 'loaded'
group by f.batch_id, f.source, f.file_name, f.township_code, b.loaded_at;

-- Indicator values say which townships a county figure lacks and which files a township's figure
-- came from (warehouse/models/marts/indicator_value.sql); editions keep both.
alter table mart.indicator_edition_value add column missing_townships integer;
alter table mart.indicator_edition_value add column source_files varchar[];
