-- Reference data and the audit trail of runs, batches, landed files, validation and quarantine.
create table ref.township (
    code varchar primary key,          -- 9-digit township code
    name varchar not null,
    kind varchar,                      -- 街道 / 镇 / 乡
    county_code varchar not null,
    county_name varchar not null
);

create table ref.indicator_catalogue (
    indicator_code varchar primary key,
    name_zh varchar not null,
    name_en varchar not null,
    unit varchar not null,
    source varchar not null,
    kind varchar not null,             -- count | rate | amount | median | mean
    direction varchar not null,        -- higher_is_better | lower_is_better | neutral
    definition varchar not null,
    definition_source varchar not null,
    target_value double,
    sort_order integer not null
);

create table ref.workday (
    day date primary key,
    is_workday boolean not null,
    workday_seq integer not null       -- running count of working days up to and including day
);

create table audit.run (
    run_id varchar primary key,
    started_at timestamp not null,
    finished_at timestamp,
    outcome varchar,
    manifest json
);

create table audit.batch (
    batch_id varchar primary key,
    source varchar not null,
    run_id varchar,
    landed_at timestamp not null,
    loaded_at timestamp not null,
    status varchar not null,           -- loaded | stopped
    received_rows bigint not null,
    loaded_rows bigint not null,
    quarantined_rows bigint not null,
    message_zh varchar,
    message_en varchar
);

create table audit.batch_table (
    batch_id varchar not null,
    table_name varchar not null,
    received_rows bigint not null,
    loaded_rows bigint not null,
    quarantined_rows bigint not null,
    primary key (batch_id, table_name)
);

create table audit.landed_file (
    sha256 varchar not null,
    source varchar not null,
    batch_id varchar not null,
    file_name varchar not null,
    bytes bigint not null,
    primary key (source, sha256)
);

create table audit.validation_result (
    batch_id varchar not null,
    table_name varchar not null,
    rule varchar not null,
    expectation_type varchar not null,
    column_name varchar,
    level varchar not null,
    success boolean not null,
    element_count bigint,
    unexpected_count bigint,
    validated_at timestamp not null
);

create table audit.quarantine (
    batch_id varchar not null,
    source varchar not null,
    table_name varchar not null,
    source_file varchar not null,
    row_number integer not null,
    township_code varchar,
    business_key varchar,
    rules varchar[] not null,
    message_zh varchar not null,
    message_en varchar not null,
    row_content json,                  -- the parsed row, personal data already removed
    quarantined_at timestamp not null,
    resolved_at timestamp,
    resolved_by_batch varchar,
    primary key (batch_id, table_name, source_file, row_number)
);
